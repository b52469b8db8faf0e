import { randomBytes } from 'node:crypto';
import mongoose from 'mongoose';
import { MongoMessageStore } from '@rms/message-service';
import { messageStoreContract } from '../contract/message-store.contract.js';

const MONGO_URL = process.env['MONGO_URL'];

messageStoreContract(
  'MongoDB',
  async () => {
    // A collection of its own per run, dropped afterwards.
    const collection = `rms_test_${randomBytes(4).toString('hex')}`;
    const store = new MongoMessageStore({ url: MONGO_URL ?? '', collection });
    return {
      store,
      async dispose() {
        await store.close();
        const connection = await mongoose.createConnection(MONGO_URL ?? '').asPromise();
        try {
          await connection.dropCollection(collection);
        } finally {
          await connection.close();
        }
      },
    };
  },
  MONGO_URL ? false : 'MONGO_URL is not set: no MongoDB server here (set MONGO_URL=mongodb://… to run this suite)',
);
