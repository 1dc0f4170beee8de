// Fork-ready time, side by side: spark-pg's btrfs fork against CREATE DATABASE (FILE_COPY and
// WAL_LOG) and pg_dump | pg_restore, at about 1 GB and 4 GB of pgbench data, idle and while pgbench
// writes to the source. Run by hand, as root, with the lab free (it brings up its own host):
//
//   npx ts-node bench/fork/run.ts [--scales 68,270] [--runs 7] [--slow-runs 3] [--out FILE]
//
// Each figure is the median, in ms, from command start to the first successful query as role spark
// over TCP. The timing runs on the host itself (bench/fork/on-host.sh), so ssh is not in it.
import * as path from "path";
import { median, option } from "../stats";
import { benchOnLabHost, collectSamples, copyScripts, ON_HOST_DIR } from "../onHost";

interface Sample { method: string; scale: number; bytes: number; load: string; run: number; ms?: number; error?: string }

const METHODS = ["btrfs-fork", "file-copy", "wal-log", "dump-restore"];

function report(samples: Sample[]): string {
    const columns = [...new Set(samples.map((s) => `${s.scale}/${s.load}`))];
    const size = (scale: number) => {
        const bytes = samples.find((s) => s.scale === scale)!.bytes;
        return `${(bytes / 2 ** 30).toFixed(1)} GB`;
    };
    const heading = columns.map((c) => { const [scale, load] = c.split("/"); return `${size(Number(scale))} ${load}`; });
    const lines = [`| method | ${heading.join(" | ")} |`, `| --- |${" --- |".repeat(columns.length)}`];
    const medians: Record<string, Record<string, number | string>> = {};
    for (const method of METHODS) {
        medians[method] = {};
        for (const column of columns) {
            const [scale, load] = column.split("/");
            const mine = samples.filter((s) => s.method === method && String(s.scale) === scale && s.load === load);
            const times = mine.filter((s) => s.ms !== undefined).map((s) => s.ms!);
            medians[method][column] = times.length ? median(times) : (mine.find((s) => s.error)?.error ?? "not run");
        }
    }
    for (const method of METHODS) {
        const cells = columns.map((column) => {
            const value = medians[method][column];
            const fork = medians["btrfs-fork"][column];
            if (typeof value === "string") return value === "not run" ? value : `refused: ${value}`;
            const runs = samples.filter((s) => s.method === method && `${s.scale}/${s.load}` === column && s.ms !== undefined).length;
            const ratio = method === "btrfs-fork" || typeof fork !== "number" ? "" : ` (${(value / fork).toFixed(0)}x)`;
            return `${Math.round(value)} ms${ratio}, n=${runs}`;
        });
        lines.push(`| ${method} | ${cells.join(" | ")} |`);
    }
    return lines.join("\n");
}

function main(): void {
    const scales = option("scales", "68,270").split(",").map(Number);
    const runs = Number(option("runs", "7"));
    const slowRuns = Number(option("slow-runs", "3"));
    const out = option("out", path.join(process.cwd(), `fork-bench-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.json`));
    const samples: Sample[] = [];

    benchOnLabHost(async (host) => {
        await copyScripts(host, __dirname, ["lib.sh", "on-host.sh"]);
        for (const scale of scales) {
            for (const load of ["idle", "load"]) {
                // CREATE DATABASE cannot copy a database others are connected to; under load it is
                // tried once to record the refusal.
                console.error(`bench: scale ${scale}, ${load}`);
                await collectSamples(host, `bash ${ON_HOST_DIR}/on-host.sh ${scale} ${load} ${runs} ${load === "load" ? Math.min(1, slowRuns) : slowRuns}`, samples, out);
            }
        }
    }, () => report(samples), out);
}

main();
