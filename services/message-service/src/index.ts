/**
 * The message service's public surface, for tests and embedding.
 */
export {
  MessageService,
  type Caller,
  type PrepareInput,
  type AckResult,
  type NackInput,
  type NackResult,
  type MessageFilter,
  type BulkResendResult,
} from './application/message-service.js';
export { HistoryRecorder, type HistoryRecorderOptions } from './application/history-recorder.js';
export { MessageStats, type MessageStatsOptions, type MessageStatsSnapshot } from './application/message-stats.js';
export { AppRegistry, parseAppRegistry, type AppRegistration, type Role, type Subscription } from './config/app-registry.js';
export { CONFIG_VARIABLES, DEFAULT_MAX_HEARTBEAT_EXTEND_MS, loadConfig, type RmsConfig } from './config/config.js';
export { OPERATIONS, buildOpenApiDocument, expressPath, type OpenApiOptions, type OperationSpec } from './http/openapi.js';
export * from './domain/errors.js';
export * from './domain/message.js';
export * from './domain/message-event.js';
export {
  decide,
  decideDeliveries,
  deliveriesOf,
  freshDelivery,
  patchFor,
  type Command,
  type Decision,
  type Actor,
  type DeliveryCommand,
  type DeliveriesDecision,
  type GroupCommand,
} from './domain/state-machine.js';
export { createLogger, type Logger } from './observability/logger.js';
export { RmsServer, type RmsServerOptions } from './server.js';
export { createMessageStore, type MessageStoreSettings } from './store/create-message-store.js';
export type * from './store/message-store.js';
export { movedMessage } from './store/message-store.js';
export { PostgresMessageStore, type PostgresStoreOptions } from './store/postgres/postgres-message-store.js';
export { MIGRATIONS, type Migration } from './store/postgres/schema.js';
export { MongoMessageStore, type MongoStoreOptions } from './store/mongo/mongo-message-store.js';
export type { Alert, Notification, NotificationSink, Notifier } from './alerts/notifier.js';
export { AlertBatcher, type AlertBatcherOptions } from './alerts/alert-batcher.js';
export type { CheckAnswer, CheckBackClient, CheckRequest, CheckTarget, CheckVerdict } from './check-back/check-back-client.js';
export { HttpCheckBackClient } from './check-back/http-check-back-client.js';
export { parseTopicSchedules, deliveryScheduleResolver } from './config/topic-schedules.js';
export * from './domain/schedule.js';
export { WebhookSink, type WebhookSinkOptions } from './alerts/webhook-sink.js';
export { RetentionSweeper, type RetentionOptions } from './application/retention.js';
export { Metrics } from './observability/metrics.js';
export { createHttpApp, routesOf, type HttpAppOptions, type RouteEntry } from './http/http-app.js';
export { AdmissionLimit, type AdmissionLimitOptions, type InFlightView } from './http/admission-limit.js';
export { AdmissionControl, type AdmissionOptions } from './http/admission-control.js';
