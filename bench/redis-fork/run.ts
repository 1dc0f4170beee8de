// Fork-ready time, side by side: spark-redis's btrfs fork against the classical ways to a private
// copy of a Redis dataset (a dump restored into a new server, a replica synced from scratch), at
// about 100 MB and 1 GB, idle and while redis-benchmark writes to the source. Run by hand, as
// root, with the lab free (it brings up its own host):
//
//   npx ts-node bench/redis-fork/run.ts [--sizes 100,1000] [--runs 7] [--slow-runs 3] [--out FILE]
//
// Each figure is the median, in ms, from command start to the first successful command as user
// spark over TCP; memory is each copy's PSS once ready. The timing runs on the host itself
// (bench/redis-fork/on-host.sh), so ssh is not in it.
import * as path from "path";
import { benchOnLabHost, collectSamples, copyScripts, ON_HOST_DIR } from "../onHost";
import { median, option } from "../stats";

interface Sample {
    method: string; mb: number; used_memory: number; load: string; run: number; ms: number; pss_kb: number | null; fork_used_memory: number | null;
    /** Throughput samples only. */
    appendfsync?: string; sets_per_s?: number | null;
}

const METHODS = ["spark-redis-fork", "dump-restore", "replica-sync"];

function report(samples: Sample[]): string {
    const columns = [...new Set(samples.filter((s) => s.method !== "throughput").map((s) => `${s.mb}/${s.load}`))];
    const heading = columns.map((c) => {
        const [mb, load] = c.split("/");
        const used = samples.find((s) => String(s.mb) === mb)!.used_memory;
        return `${Math.round(used / 2 ** 20)} MB ${load}`;
    });
    const of = (method: string, column: string) => samples.filter((s) => s.method === method && `${s.mb}/${s.load}` === column);
    const lines = [`| method | ${heading.join(" | ")} |`, `| --- |${" --- |".repeat(columns.length)}`];
    for (const method of METHODS) {
        const cells = columns.map((column) => {
            const mine = of(method, column).map((s) => s.ms);
            if (mine.length === 0) return "not run";
            const fork = median(of("spark-redis-fork", column).map((s) => s.ms));
            const ratio = method === "spark-redis-fork" ? "" : ` (${(median(mine) / fork).toFixed(1)}x)`;
            return `${Math.round(median(mine))} ms${ratio}, n=${mine.length}`;
        });
        lines.push(`| ${method} | ${cells.join(" | ")} |`);
    }
    lines.push("", "Memory of each copy once ready (median PSS of its server):", "", `| method | ${heading.join(" | ")} |`, `| --- |${" --- |".repeat(columns.length)}`);
    for (const method of METHODS) {
        const cells = columns.map((column) => {
            const pss = of(method, column).map((s) => s.pss_kb).filter((v): v is number => v !== null);
            return pss.length ? `${Math.round(median(pss) / 1024)} MB` : "-";
        });
        lines.push(`| ${method} | ${cells.join(" | ")} |`);
    }
    const throughput = samples.filter((s) => s.method === "throughput");
    if (throughput.length) {
        lines.push("", "SET throughput of the source (redis-benchmark -c 4 -P 8, 100-byte values), by appendfsync, in one run:", "");
        for (const s of throughput) lines.push(`- ${Math.round(s.used_memory / 2 ** 20)} MB, appendfsync ${s.appendfsync}: ${s.sets_per_s} SET/s`);
    }
    return lines.join("\n");
}

function main(): void {
    const sizes = option("sizes", "100,1000").split(",").map(Number);
    const runs = Number(option("runs", "7"));
    const slowRuns = Number(option("slow-runs", "3"));
    const out = option("out", path.join(process.cwd(), `redis-fork-bench-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.json`));
    const samples: Sample[] = [];

    benchOnLabHost(async (host) => {
        await copyScripts(host, __dirname, ["on-host.sh"]);
        for (const mb of sizes) {
            for (const load of ["idle", "load"]) {
                console.error(`bench: ${mb} MB, ${load}`);
                await collectSamples(host, `bash ${ON_HOST_DIR}/on-host.sh ${mb} ${load} ${runs} ${slowRuns}`, samples, out);
            }
        }
    }, () => report(samples), out);
}

main();
