/** The loyalty service example: a second consumer group, for the demo and the end-to-end tests. */
export { LoyaltyService, type LoyaltyServiceOptions, type LoyaltyStats, type PaidOrder } from './loyalty-service.js';
export { PointsStore, type AwardOutcome } from './points-store.js';
