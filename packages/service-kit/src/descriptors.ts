/**
 * Bridges protobuf-es service descriptors to @grpc/grpc-js: method definitions (paths, serializers) and the
 * file descriptors that server reflection serves.
 */
import {
  fromBinary,
  toBinary,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
} from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { MethodDefinition } from '@grpc/grpc-js';

export type MethodKind = DescMethod['methodKind'];

export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function serializer(schema: DescMessage) {
  // The messages handed to us are protobuf-es messages of exactly this schema (handlers' plain init objects are
  // created into messages before they get here).
  return (value: unknown): Buffer => {
    const bytes = toBinary(schema, value as never);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(schema: DescMessage) {
  return (bytes: Buffer): unknown => fromBinary(schema, bytes);
}

export function methodDefinition(method: DescMethod): MethodDefinition<unknown, unknown> {
  return {
    path: methodPath(method),
    requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
    responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
    requestSerialize: serializer(method.input),
    requestDeserialize: deserializer(method.input),
    responseSerialize: serializer(method.output),
    responseDeserialize: deserializer(method.output),
    originalName: method.localName,
  };
}

/** The grpc-js service definition of a protobuf-es service, keyed by RPC name. */
export function serviceDefinition(service: DescService): Record<string, MethodDefinition<unknown, unknown>> {
  const def: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) def[m.name] = methodDefinition(m);
  return def;
}

/** Serialized FileDescriptorProtos of the files declaring these services and everything they import. */
export function fileDescriptorProtos(services: readonly DescService[]): Buffer[] {
  const seen = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (seen.has(file.name)) return;
    seen.set(file.name, file);
    for (const dep of file.dependencies) visit(dep);
  };
  for (const s of services) visit(s.file);
  return [...seen.values()].map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
}
