/** The inventory service example, for the demo and the end-to-end tests. */
export { InventoryService, type InventoryServiceOptions, type InventoryStats, type ReduceStock } from './inventory-service.js';
export { StockStore, type ApplyOutcome } from './stock-store.js';
