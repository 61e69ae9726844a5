import { checkHealth, type ServingState } from '@ch8/service-kit/probes';
import { list } from '../args.ts';
import type { Command } from '../command.ts';
import { SERVICES, SERVICE_TYPE, stackAddresses, type ServiceName } from '../stack.ts';

interface Row {
  service: ServiceName;
  address: string;
  status: ServingState;
  /** Health of the service's own gRPC service entry (and, for the gateway, of inference.GRPCInferenceService). */
  services: Record<string, ServingState>;
}

export const healthCommand: Command = {
  name: 'health',
  summary: 'health of each service of the local stack (grpc.health.v1); exits 1 if any is not SERVING',
  problems: [],
  usage: 'ch8 health [--json] [--service NAME...]',
  flags: {
    json: { type: 'boolean', help: 'one JSON document on standard output' },
    service: { type: 'string', multiple: true, help: `only these (${SERVICES.join(', ')})` },
  },
  async run(args, io) {
    const addrs = stackAddresses(io.env);
    const wanted = list(args, 'service');
    for (const w of wanted) if (!SERVICES.includes(w as ServiceName)) throw new Error(`unknown service ${w}`);
    const names = wanted.length > 0 ? (wanted as ServiceName[]) : [...SERVICES];
    io.log(`probing ${names.length} service(s): ${names.map((n) => `${n}@${addrs[n]}`).join(', ')}`);
    const rows: Row[] = await Promise.all(
      names.map(async (service) => {
        const address = addrs[service];
        const status = await checkHealth(address, '');
        const services: Record<string, ServingState> = {};
        if (status !== 'UNREACHABLE') {
          services[SERVICE_TYPE[service]] = await checkHealth(address, SERVICE_TYPE[service]);
          if (service === 'gateway')
            services['inference.GRPCInferenceService'] = await checkHealth(address, 'inference.GRPCInferenceService');
        }
        return { service, address, status, services };
      }),
    );
    const ok = rows.every((r) => r.status === 'SERVING');
    io.result({ ok, services: rows }, (v: { services: Row[] }) =>
      v.services
        .map((r) => {
          const extra = Object.entries(r.services)
            .filter(([, s]) => s !== r.status)
            .map(([n, s]) => ` (${n}: ${s})`)
            .join('');
          return `${r.service.padEnd(10)} ${r.address.padEnd(18)} ${r.status}${extra}`;
        })
        .join('\n'),
    );
    return ok ? 0 : 1;
  },
};
