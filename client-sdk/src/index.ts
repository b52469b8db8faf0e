/**
 * The RMS client SDK: the producer client and check-back handler, `subscribe` for
 * consumers, the wrapped MQ transports, and the typed errors.
 */

export { SDK_VERSION } from './sdk-version.js';
export * from './errors.js';
export * from './http/rms-http-client.js';
export * from './check-signature.js';
export * from './transport/transport.js';
export * from './transport/errors.js';
export {
  RabbitMqTransport,
  rabbitMqQueueName,
  type RabbitMqTransportLogger,
  type RabbitMqTransportOptions,
} from './transport/rabbitmq-transport.js';
export * from './logger.js';
export type * from './redis-client.js';
export * from './producer/producer.js';
export * from './producer/check-handler.js';
export * from './consumer/delivery.js';
export * from './consumer/subscribe.js';
export * from './transport/group-routing.js';
export * from './consumer/ack-batcher.js';
export * from './consumer/idempotency.js';
export * from './transport/rabbitmq-consumer.js';
export * from './transport/queue-type.js';
export * from './transport/fallback-keys.js';
export { RedisListTransport, type RedisListTransportOptions } from './transport/redis-list-transport.js';
export * from './consumer/redis-list-source.js';
export * from './degrade/degrade-switch.js';
export * from './degrade/memory-degrade-switch.js';
export * from './degrade/zookeeper-degrade-switch.js';
export * from './transport/failover-transport.js';
export * from './consumer/fallback-consumption.js';
export * from './batching/micro-batcher.js';
