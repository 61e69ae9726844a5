import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  GRPCInferenceService,
  ModelInferRequestSchema,
  ModelInferRequest_InferInputTensorSchema,
} from './gen/inference/grpc_service_pb.ts';
import { EmbeddingService } from './gen/ch8/embedding/v1/embedding_pb.ts';
import { DatasetService } from './gen/ch8/dataset/v1/dataset_pb.ts';
import { TrainerService } from './gen/ch8/trainer/v1/trainer_pb.ts';
import { GatewayService } from './gen/ch8/gateway/v1/gateway_pb.ts';

test('the Open Inference Protocol keeps the names and field numbers standard clients use', () => {
  assert.equal(GRPCInferenceService.typeName, 'inference.GRPCInferenceService');
  assert.deepEqual(
    GRPCInferenceService.methods.map((m) => m.name),
    ['ServerLive', 'ServerReady', 'ModelReady', 'ServerMetadata', 'ModelMetadata', 'ModelInfer'],
  );
  const numbers = Object.fromEntries(ModelInferRequestSchema.fields.map((f) => [f.name, f.number]));
  assert.deepEqual(numbers, {
    model_name: 1,
    model_version: 2,
    id: 3,
    parameters: 4,
    inputs: 5,
    outputs: 6,
    raw_input_contents: 7,
  });
  const tensor = Object.fromEntries(ModelInferRequest_InferInputTensorSchema.fields.map((f) => [f.name, f.number]));
  assert.deepEqual(tensor, { name: 1, datatype: 2, shape: 3, parameters: 4, contents: 5 });
});

test('a KServe request survives the wire', () => {
  const req = create(ModelInferRequestSchema, {
    modelName: 'bow',
    inputs: [
      { name: 'text', datatype: 'BYTES', shape: [1n], contents: { bytesContents: [new TextEncoder().encode('good')] } },
    ],
  });
  const back = fromBinary(ModelInferRequestSchema, toBinary(ModelInferRequestSchema, req));
  assert.equal(back.modelName, 'bow');
  assert.equal(new TextDecoder().decode(back.inputs[0]!.contents!.bytesContents[0]), 'good');
  assert.deepEqual(back.inputs[0]!.shape, [1n]);
});

test('every service of ours lives in a versioned ch8 package and streams where the data flow needs it', () => {
  for (const s of [EmbeddingService, DatasetService, TrainerService, GatewayService])
    assert.match(s.typeName, /^ch8\.\w+\.v1\.\w+Service$/);
  assert.equal(EmbeddingService.method.streamMatrix.methodKind, 'server_streaming');
  assert.equal(DatasetService.method.streamBatches.methodKind, 'server_streaming');
  assert.equal(TrainerService.method.watchRun.methodKind, 'server_streaming');
});
