/**
 * `npm run openapi`: writes the OpenAPI 3.1 document of RMS's HTTP API, generated from the
 * routes' zod schemas with the default limits, to `docs/openapi.json`. A test fails when
 * the committed file differs from what this writes.
 */
import { writeFileSync } from 'node:fs';
import { DEFAULT_MAX_HEARTBEAT_EXTEND_MS, buildOpenApiDocument } from '@rms/message-service';

/** The committed document's text. */
export function openApiText(): string {
  return `${JSON.stringify(buildOpenApiDocument({ maxHeartbeatExtendMs: DEFAULT_MAX_HEARTBEAT_EXTEND_MS }), null, 2)}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const target = new URL('../docs/openapi.json', import.meta.url);
  writeFileSync(target, openApiText());
  console.log(`wrote ${target.pathname}`);
}
