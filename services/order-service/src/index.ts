/** The order service example, for the demo and the end-to-end tests. */
export { OrderService, PaymentDeclinedError, REDUCE_STOCK_TOPIC, type OrderServiceOptions, type Simulation } from './order-service.js';
export { OrderStore, type Order } from './order-store.js';
