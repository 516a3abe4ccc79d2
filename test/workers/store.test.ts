/** Runs the store contract against both drivers inside workerd: in-memory, and Upstash over REST
 * (through the Upstash-compatible gateway in front of the real redis-server). */
import { MemoryStore } from "../../src/store/memory/store.ts";
import { UpstashStore } from "../../src/store/upstash/store.ts";
import { describeStoreContract } from "../contract/store/index.ts";
import { redisSkipReason, services, uniquePrefix } from "../support/services.ts";

describeStoreContract({ name: "memory", make: (options) => new MemoryStore(options) });

describeStoreContract({
  name: "upstash",
  skip: redisSkipReason(),
  make: (options) => {
    const { upstash } = services();
    return new UpstashStore({
      url: upstash.url,
      token: upstash.token,
      prefix: uniquePrefix(),
      ...options,
    });
  },
});
