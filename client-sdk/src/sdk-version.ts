/**
 * The SDK's version, read from its own `package.json` so that it cannot drift from the
 * published one. `src/` and `dist/` both sit directly below that file.
 */
import { readFileSync } from 'node:fs';

/** The SDK's version: the `version` of `@rms/client-sdk`'s package.json. */
export const SDK_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
