// spark-pg at scale on one host, each figure beside the classical way, in one run: fork-ready time
// at about 1, 4 and 16 GB; FORKS forks of the 4 GB source side by side (time of each as the count
// grows, memory and disk per fork); rollback and reset against pg_restore of a dump and
// CREATE DATABASE ... TEMPLATE. Run by hand, as root, with the lab free (it brings up its own host):
//
//   npx ts-node bench/fork/scale.ts [--scales 68,1080,270] [--runs 7] [--slow-runs 3] [--forks 50]
//
// The last scale is the one the forks, rollback and reset use. The 16 GB source wants a bigger
// lab disk than the default: SPARKS_LAB_DISK_SIZE=48G. Raw samples go to bench/fork/scale-DATE.json.
import * as fs from "fs";
import * as path from "path";
import { sparksLabHost } from "../../test/host/labHost";
import { median, option } from "../stats";
import { copyScripts, ON_HOST_DIR } from "../onHost";

interface Sample {
    kind: string; method: string; scale: number; bytes: number; run: number; ms: number;
    pss?: number; anon?: number; file?: number; shmem?: number; exclusive_bytes?: number;
    forks?: number; used_before?: number; used_after?: number; steps?: Record<string, number>;
}

const gb = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GB`;
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
const spread = (values: number[], unit: (v: number) => string) =>
    `${unit(median(values))} (${unit(Math.min(...values))}-${unit(Math.max(...values))}), n=${values.length}`;
const ms = (v: number) => `${Math.round(v)} ms`;

function report(samples: Sample[]): string {
    const of = (kind: string, method?: string) => samples.filter((s) => s.kind === kind && (method === undefined || s.method === method));
    const lines: string[] = [];

    lines.push("Fork-ready time, idle, by size (median (range), n; ratio to the smallest)", "", "| size | fork-ready | ratio |", "| --- | --- | --- |");
    const scales = [...new Set(of("fork-ready").map((s) => s.scale))].sort((a, b) => a - b);
    const smallest = median(of("fork-ready").filter((s) => s.scale === scales[0]).map((s) => s.ms));
    for (const scale of scales) {
        const mine = of("fork-ready").filter((s) => s.scale === scale);
        lines.push(`| ${gb(mine[0].bytes)} | ${spread(mine.map((s) => s.ms), ms)} | ${(median(mine.map((s) => s.ms)) / smallest).toFixed(2)} |`);
    }

    const steps = ["locked", "snapshot", "config", "started", "password"];
    lines.push("", "Where an idle fork's time goes: spark-pg's steps (SPARK_PG_TIMING), median ms into the command", "",
        `| size | ${steps.join(" | ")} |`, `| --- |${" --- |".repeat(steps.length)}`);
    for (const scale of scales) {
        const mine = of("fork-ready").filter((s) => s.scale === scale);
        lines.push(`| ${gb(mine[0].bytes)} | ${steps.map((step) => Math.round(median(mine.map((s) => s.steps?.[step] ?? NaN)))).join(" | ")} |`);
    }

    const many = of("many-forks");
    const costs = of("fork-cost");
    const pool = of("pool-use")[0];
    if (many.length) {
        lines.push("", `${many.length} forks of the ${gb(many[0].bytes)} source, all running: fork-ready time as the count grows`, "",
            "| forks | fork-ready |", "| --- | --- |");
        for (let from = 1; from <= many.length; from += 10) {
            const group = many.filter((s) => s.run >= from && s.run < from + 10).map((s) => s.ms);
            lines.push(`| ${from}-${Math.min(from + 9, many.length)} | ${spread(group, ms)} |`);
        }
        lines.push("", "Cost of each running fork (median (range)):", "", "| | per fork |", "| --- | --- |",
            `| memory: PSS of its postmaster and children | ${spread(costs.map((s) => s.pss!), mb)} |`,
            `| of which anonymous | ${spread(costs.map((s) => s.anon!), mb)} |`,
            `| of which shared memory (its shared_buffers, as touched) | ${spread(costs.map((s) => s.shmem!), mb)} |`,
            `| of which file pages (binaries, page cache it maps) | ${spread(costs.map((s) => s.file!), mb)} |`,
            `| disk, exclusive to the fork | ${spread(costs.map((s) => s.exclusive_bytes!), mb)} |`);
        if (pool) lines.push(`| pool's used space, grown by ${mb(pool.used_after! - pool.used_before!)} for ${pool.forks} forks | ${mb((pool.used_after! - pool.used_before!) / pool.forks!)} |`);
    }

    for (const [kind, ours, classical] of [["rollback", "btrfs-rollback", ["dump-restore"]], ["reset", "btrfs-reset", ["template-file-copy", "template-wal-log"]]] as const) {
        const mine = of(kind, ours).map((s) => s.ms);
        if (!mine.length) continue;
        lines.push("", `${kind[0].toUpperCase()}${kind.slice(1)} at ${gb(of(kind, ours)[0].bytes)} (median (range), n; ratio to spark-pg)`, "",
            "| method | time | ratio |", "| --- | --- | --- |", `| spark-pg ${kind} | ${spread(mine, ms)} | 1 |`);
        for (const method of classical) {
            const theirs = of(kind, method).map((s) => s.ms);
            if (theirs.length) lines.push(`| ${method} | ${spread(theirs, ms)} | ${Math.round(median(theirs) / median(mine))}x |`);
        }
    }
    return lines.join("\n");
}

(async () => {
    const scales = option("scales", "68,1080,270").split(",").map(Number);
    const runs = Number(option("runs", "7"));
    const slowRuns = Number(option("slow-runs", "3"));
    const forks = Number(option("forks", "50"));
    const out = path.join(__dirname, `scale-${new Date().toISOString().slice(0, 10)}.json`);
    const host = await sparksLabHost({ SPARK_PG_PORTS: `5432-${5432 + forks + 20}`, SPARK_PG_LISTEN: "127.0.0.1" });
    try {
        await copyScripts(host, __dirname, ["lib.sh", "scale-on-host.sh"]);
        const result = await host.sh(`bash ${ON_HOST_DIR}/scale-on-host.sh ${runs} ${slowRuns} ${forks} ${scales.join(" ")}`, undefined, 3 * 3600 * 1000);
        const samples: Sample[] = result.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
        fs.writeFileSync(out, `${JSON.stringify(samples, null, 1)}\n`);
        if (result.code !== 0) throw new Error(`scale-on-host.sh: exit ${result.code}\n${result.stderr.slice(-3000)}`);
        console.log(report(samples));
        console.log(`\nraw samples: ${out}`);
    } finally {
        await host.down();
    }
})().catch((error) => { console.error(error); process.exit(1); });
