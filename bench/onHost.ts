// The benches' host side: their scripts, copied into a root-only directory on the host, and the
// JSON lines they print, collected as samples.
import * as fs from "fs";
import * as path from "path";
import { SparksLabHost, sparksLabHost } from "../test/host/labHost";

export const ON_HOST_DIR = "/root/bench-on-host";

/** Copies each of `names`, from the directory `from`, to ON_HOST_DIR. */
export async function copyScripts(host: SparksLabHost, from: string, names: string[]): Promise<void> {
    await host.ok(`install -d -m 0700 ${ON_HOST_DIR}`);
    for (const name of names) await host.ok(`cat > ${ON_HOST_DIR}/${name}`, fs.readFileSync(path.join(from, name), "utf8"));
}

/**
 * Runs `command` on the host, adds each JSON line it prints to `samples` and saves them all to
 * `out` (so a later failure keeps what was measured); a failure shows the tail of its stderr.
 */
export async function collectSamples<T>(host: SparksLabHost, command: string, samples: T[], out: string): Promise<void> {
    const result = await host.sh(command);
    if (result.code !== 0) throw new Error(`${command}: exit ${result.code}\n${result.stderr.slice(-3000)}`);
    for (const line of result.stdout.split("\n").filter((l) => l.startsWith("{"))) samples.push(JSON.parse(line));
    fs.writeFileSync(out, JSON.stringify(samples, null, 1));
}

/**
 * A bench's whole run on one fresh lab host: `measure` on it, the lab taken down whatever
 * happens, then what `report` says and where the raw samples are; a failure exits 1.
 */
export function benchOnLabHost(measure: (host: SparksLabHost) => Promise<void>, report: () => string, out: string): void {
    (async () => {
        const host = await sparksLabHost({ SPARK_PG_PORTS: "5432-5450", SPARK_PG_LISTEN: "127.0.0.1" });
        try {
            await measure(host);
        } finally {
            await host.down();
        }
        console.log(report());
        console.log(`\nraw samples: ${out}`);
    })().catch((error) => {
        console.error(error);
        process.exit(1);
    });
}
