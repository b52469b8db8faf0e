/**
 * The RMS client SDK. It will hold the producer client, `subscribe` for consumers and the
 * wrapped MQ transport (issues 3 to 5); for now it only builds, so the workspace and the
 * message service can depend on it from the start.
 */

/** The SDK's version, sent as part of its User-Agent once it makes calls. */
export const SDK_VERSION = '0.1.0';

export * from './transport/transport.js';
export * from './transport/errors.js';
export {
  RabbitMqTransport,
  rabbitMqQueueName,
  type RabbitMqTransportLogger,
  type RabbitMqTransportOptions,
} from './transport/rabbitmq-transport.js';
export * from './check-signature.js';
