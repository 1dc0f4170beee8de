// The fork under write load: checkpoint the source first, or let the fork replay more WAL? Forks
// a pgbench source (about 4 GB by default) while pgbench writes to it, with each
// SPARK_PG_CHECKPOINT_WAL_MB given, under each load (pgbench -c 2 -j 2 at each --rates
// transactions a second, 0 as fast as it goes), side by side in one run. Run by hand, as root,
// with the lab free (it brings up its own host):
//
//   npx ts-node bench/fork/tradeoff.ts [--scale 270] [--runs 5] [--rates 0,200] [--thresholds 0,16,64,256]
//
// 0 checkpoints before every fork; a large one never does. Prints, per load and threshold, the
// median fork-ready time, the WAL pending at the fork, how often it checkpointed, the fork's redo
// and end-of-recovery checkpoint times, and when spark-pg reached each of its steps.
import * as fs from "fs";
import * as path from "path";
import { sparksLabHost } from "../../test/host/labHost";
import { median, option } from "../stats";
import { copyScripts, ON_HOST_DIR } from "../onHost";

interface Sample { rate: number; threshold_mb: number; run: number; ms: number; wal_since_checkpoint_mb: number; checkpointed: boolean;
    redo_s: number | null; end_of_recovery_checkpoint_s: number | null; steps: Record<string, number> }

(async () => {
    const scale = Number(option("scale", "270"));
    const runs = Number(option("runs", "5"));
    const rates = option("rates", "0,200").split(",").map(Number);
    const thresholds = option("thresholds", "0,16,64,256").split(",").map(Number);
    const host = await sparksLabHost({ SPARK_PG_PORTS: "5432-5450", SPARK_PG_LISTEN: "127.0.0.1" });
    try {
        await copyScripts(host, __dirname, ["lib.sh", "tradeoff-on-host.sh"]);
        const out = await host.ok(`bash ${ON_HOST_DIR}/tradeoff-on-host.sh ${scale} ${runs} ${rates.join(",")} ${thresholds.join(" ")}`);
        const lines = out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
        const samples: Sample[] = lines.filter((l) => l.threshold_mb !== undefined);
        const tps = new Map<number, number>(lines.filter((l) => l.tps !== undefined).map((l) => [l.rate, l.tps]));
        const file = path.join(__dirname, `tradeoff-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.json`);
        fs.writeFileSync(file, `${JSON.stringify(lines, null, 1)}\n`);
        const med = (values: (number | null)[]) => {
            const known = values.filter((v): v is number => v !== null);
            return known.length ? median(known) : NaN;
        };
        const steps = ["locked", "snapshot", "config", "started", "password"];
        for (const rate of rates) {
            const of = (t: number) => samples.filter((s) => s.rate === rate && s.threshold_mb === t);
            console.log(`\nLoad: pgbench -c 2 -j 2 ${rate ? `-R ${rate}` : "unthrottled"}, ${tps.get(rate)} transactions/s achieved`);
            console.log("| SPARK_PG_CHECKPOINT_WAL_MB | fork-ready (median, range) | WAL pending | checkpointed | fork's redo | end-of-recovery checkpoint |");
            console.log("| --- | --- | --- | --- | --- | --- |");
            for (const t of thresholds) {
                const s = of(t);
                const ms = s.map((x) => x.ms);
                console.log(`| ${t} | ${Math.round(median(ms))} ms (${Math.min(...ms)}-${Math.max(...ms)}) | ${Math.round(med(s.map((x) => x.wal_since_checkpoint_mb)))} MB | ` +
                    `${s.filter((x) => x.checkpointed).length}/${s.length} | ${med(s.map((x) => x.redo_s)).toFixed(2)} s | ${med(s.map((x) => x.end_of_recovery_checkpoint_s)).toFixed(2)} s |`);
            }
            // Where the time goes: spark-pg's own steps (SPARK_PG_TIMING), median ms into the fork.
            console.log(`\n| SPARK_PG_CHECKPOINT_WAL_MB | ${steps.map((s) => `${s} at`).join(" | ")} |`);
            console.log(`| --- |${" --- |".repeat(steps.length)}`);
            for (const t of thresholds) {
                console.log(`| ${t} | ${steps.map((step) => `${Math.round(med(of(t).map((x) => x.steps?.[step] ?? null)))} ms`).join(" | ")} |`);
            }
        }
        console.log(`\nraw samples: ${file}`);
    } finally {
        await host.down();
    }
})().catch((error) => { console.error(error); process.exit(1); });
