// spark-redis databases as Pulumi resources: a RedisInstance is a Redis server of its own, a
// RedisFork a copy of an instance (or of another fork) as of when it is made, run as its own server
// on its own port. Both are driven by the host's `spark-redis` tool over SSH; each has its own
// random password (sparkDatabase.ts). Their names are a namespace apart from spark-pg's.
import * as pulumi from "@pulumi/pulumi";
import { uriHost } from "./config";
import { shellQuote } from "./shell";
import { DatabaseTool, SparkDatabase, SparkDatabaseArgs } from "./sparkDatabase";

export interface RedisForkArgs extends SparkDatabaseArgs {
    /** The instance or fork it copies. */
    source: RedisDatabase;
}

/** Each database appends its name to this list; a fork starts with a copy of its source's, so the list is its lineage, root first. */
const LINEAGE_KEY = "sparks:verify:lineage";

const SPARK_REDIS: DatabaseTool = {
    name: "redis",
    // `connect --cli` runs redis-cli as spark-redis's admin user over loopback. The name goes last
    // once: a create run again (adopting what it made) must not add it twice. NAME_PATTERN keeps it
    // one word.
    recordLineage: (name) => {
        const commands = [`LREM ${LINEAGE_KEY} 0 ${name}`, `RPUSH ${LINEAGE_KEY} ${name}`];
        return `printf '%s\\n' ${commands.map(shellQuote).join(" ")} | spark-redis connect ${shellQuote(name)} --cli >/dev/null`;
    },
    uri: (password, address, port) => pulumi.interpolate`redis://spark:${password}@${uriHost(address)}:${port}`,
};

/** What every spark-redis database exposes. Its `uri` is `redis://spark:PASSWORD@ADDRESS:PORT`. */
export abstract class RedisDatabase extends SparkDatabase {
    protected constructor(type: string, name: string, verb: string, args: SparkDatabaseArgs & { source?: RedisDatabase }, protect: boolean,
        opts?: pulumi.ComponentResourceOptions) {
        super(type, name, SPARK_REDIS, verb, args, protect, opts);
    }
}

/**
 * A Redis server with its own data directory on the host's pool, run by spark-redis.
 *
 * ```ts
 * const cache = new RedisInstance("cache", { host });
 * export const cacheUri = cache.uri; // secret
 * ```
 */
export class RedisInstance extends RedisDatabase {
    constructor(name: string, args: SparkDatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
        super("sparks:index:RedisInstance", name, `new ${shellQuote(name)}`, args, args.protect ?? true, opts);
    }
}

/**
 * A writable copy of a Redis instance (or of a fork) as of now, on its own port with its own
 * password: its source's password is not valid on it.
 *
 * ```ts
 * const review = new RedisFork("cache-review", { host, source: cache });
 * ```
 */
export class RedisFork extends RedisDatabase {
    constructor(name: string, args: RedisForkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("sparks:index:RedisFork", name, `fork ${shellQuote(args.source.databaseName)} ${shellQuote(name)}`, args, args.protect ?? false,
            { ...opts, dependsOn: [args.source.created] });
    }
}
