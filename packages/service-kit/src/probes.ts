/**
 * Standard probes any client can run against any of our servers: grpc.health.v1 Check/Watch and the server
 * reflection service (list of services), the same calls grpcurl makes.
 */
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { Code, GrpcError } from './status.ts';
import { channelCredentials, defaultClientTls, type Tls } from './tls.ts';

const require = createRequire(import.meta.url);

export type ServingState = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN' | 'UNREACHABLE';

interface HealthClient extends grpc.Client {
  check(
    req: { service: string },
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r?: { status: string }) => void,
  ): void;
}

export interface ProbeOptions {
  /** Dial with TLS; explicitly undefined: plaintext. Default: the process's (`useClientTls`). */
  tls?: Tls | undefined;
}

const credentialsOf = (options: ProbeOptions) =>
  channelCredentials('tls' in options ? options.tls : defaultClientTls());

let healthCtor: grpc.ServiceClientConstructor | undefined;
function healthClient(address: string, options: ProbeOptions): HealthClient {
  if (!healthCtor) {
    const def = loadSync(healthProtoPath, { keepCase: true, enums: String });
    healthCtor = grpc.loadPackageDefinition(def)['grpc'] as never;
    healthCtor = (
      healthCtor as unknown as Record<string, Record<string, Record<string, grpc.ServiceClientConstructor>>>
    )['health']!['v1']!['Health']!;
  }
  return new healthCtor(address, credentialsOf(options)) as unknown as HealthClient;
}

/**
 * grpc.health.v1.Health/Check. A server that cannot be reached (a TLS handshake that fails included) reports
 * UNREACHABLE (no throw).
 */
export async function checkHealth(
  address: string,
  service = '',
  timeoutMs = 2000,
  options: ProbeOptions = {},
): Promise<ServingState> {
  const client = healthClient(address, options);
  try {
    return await new Promise<ServingState>((resolve, reject) => {
      client.check({ service }, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (!err) return resolve((res?.status ?? 'UNKNOWN') as ServingState);
        if (err.code === Code.NOT_FOUND) return resolve('SERVICE_UNKNOWN');
        if (err.code === Code.UNAVAILABLE || err.code === Code.DEADLINE_EXCEEDED) return resolve('UNREACHABLE');
        reject(new GrpcError(err.code, err.details));
      });
    });
  } finally {
    client.close();
  }
}

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  error_response?: { error_code: number; error_message: string };
}

let reflectionCtor: grpc.ServiceClientConstructor | undefined;

/** Names of the services a server lists through grpc.reflection.v1 (ServerReflectionInfo, list_services). */
export async function listServices(address: string, timeoutMs = 2000, options: ProbeOptions = {}): Promise<string[]> {
  if (!reflectionCtor) {
    const protoFile = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
    const def = loadSync(protoFile, { keepCase: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as Record<
      string,
      Record<string, Record<string, Record<string, grpc.ServiceClientConstructor>>>
    >;
    reflectionCtor = pkg['grpc']!['reflection']!['v1']!['ServerReflection']!;
  }
  const client = new reflectionCtor(address, credentialsOf(options)) as unknown as grpc.Client & {
    ServerReflectionInfo(
      md: grpc.Metadata,
      opts: grpc.CallOptions,
    ): grpc.ClientDuplexStream<unknown, ReflectionResponse>;
  };
  try {
    const call = client.ServerReflectionInfo(new grpc.Metadata(), { deadline: Date.now() + timeoutMs });
    call.write({ list_services: '*' });
    call.end();
    for await (const res of call as AsyncIterable<ReflectionResponse>) {
      if (res.error_response)
        throw new GrpcError(res.error_response.error_code as Code, res.error_response.error_message);
      if (res.list_services_response) return res.list_services_response.service.map((s) => s.name).sort();
    }
    throw new GrpcError(Code.UNKNOWN, 'reflection returned no service list');
  } catch (e) {
    const se = e as Partial<grpc.ServiceError>;
    if (e instanceof GrpcError) throw e;
    throw new GrpcError((se.code ?? Code.UNKNOWN) as Code, se.details ?? String(e));
  } finally {
    client.close();
  }
}
