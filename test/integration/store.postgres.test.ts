import { PostgresMessageStore } from '@rms/message-service';
import { messageStoreContract } from '../contract/message-store.contract.js';
import { dropSchema, freshSchemaUrl } from '../support/postgres.js';

messageStoreContract('PostgreSQL', async () => {
  const { url, schema } = freshSchemaUrl();
  const store = new PostgresMessageStore({ url });
  return {
    store,
    async dispose() {
      await store.close();
      await dropSchema(schema);
    },
  };
});
