/**
 * `npm start`: reads the configuration from the environment (and `.env` when present),
 * starts RMS, and stops it gracefully on SIGTERM or SIGINT.
 */
import { existsSync } from 'node:fs';
import { loadConfig, type RmsConfig } from './config/config.js';
import { ConfigurationError } from './domain/errors.js';
import { createLogger } from './observability/logger.js';
import { RmsServer } from './server.js';

if (existsSync('.env')) process.loadEnvFile('.env');

let config: RmsConfig;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigurationError)) throw error;
  process.stderr.write(`rms: ${error.message}\n`);
  process.exit(2);
}

const logger = createLogger(config.logLevel);
process.on('unhandledRejection', (reason) => {
  logger.fatal({ err: reason }, 'unhandled promise rejection; exiting');
  process.exit(1);
});

try {
  const server = await RmsServer.start({ config, logger });
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'signal received');
    server.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
} catch (error) {
  // A setting only an adapter can judge (the PostgreSQL schema name, say) is still a
  // configuration error: exit 2 naming it, as for the ones `loadConfig` finds.
  if (error instanceof ConfigurationError) {
    process.stderr.write(`rms: ${error.message}\n`);
    process.exit(2);
  }
  logger.fatal({ err: error }, 'RMS failed to start');
  process.exit(1);
}
