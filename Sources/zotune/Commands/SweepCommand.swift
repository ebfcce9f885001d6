import ArgumentParser
import Foundation
import ZOTuneKernels
import ZOTuneModels
import ZOTuneTraining

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Train a grid (or a list) of variations of one run, each cell a run directory; resumable cell by cell. Writes a table and a plot, and names the best cell by dev.")

    @Option(help: "The run every cell starts from: a run file (e.g. a run's config.json).")
    var config: String
    @Option(help: "An axis KEY=V1,V2,… (KEY: a run-file key such as lr, seed, steps, batch-size; or optimizer, eps, peft). Repeat for more axes: every combination is a cell.")
    var grid: [String] = []
    @Option(help: "One cell KEY=V,KEY=V,… (a list instead of, or after, the grid). Repeat for more cells.")
    var cell: [String] = []
    @Option(help: "Sweep directory: a run directory per cell, sweep.md, sweep.json and dev.svg.")
    var out: String
    @Option(help: "Cells trained at once, each its own process (--threads split among them).")
    var parallel = 1
    @OptionGroup var device: DeviceOptions

    func run() throws {
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1 (got \(parallel))") }
        let (base, cells) = try RunArgumentParsing.runConfigErrors { () -> (TrainingRun, [Sweep.Cell]) in
            (try TrainingRun.load(URL(fileURLWithPath: config)), try Sweep.cells(grid: grid, list: cell))
        }
        let root = URL(fileURLWithPath: out)
        try FileError.createDirectory(root)
        // Every cell's run is built (and refused, naming the key) before any trains.
        var cellFiles: [URL] = []
        for c in cells {
            let run = try RunArgumentParsing.runConfigErrors { () -> TrainingRun in
                var r = try Sweep.run(base, cell: c)
                r.out = nil
                try r.validate()
                return r
            }
            let file = root.appendingPathComponent(c.name + ".json")
            try run.write(to: file)
            cellFiles.append(file)
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let threads = max(1, (device.threads ?? cores) / parallel)
        say("sweep: \(cells.count) cells, \(parallel) at a time, \(threads) threads each → \(root.path)")

        let bin = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let state = SweepState()
        let files = cellFiles
        // SIGINT/SIGTERM: the running cells save their run and stop; the next sweep resumes them.
        var sources: [DispatchSourceSignal] = []
        for s in [SIGINT, SIGTERM] {
            signal(s, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: s, queue: .global())
            src.setEventHandler {
                let ps = state.locked { st -> [Process] in st.stopping = s; return st.running }
                for p in ps where p.isRunning { kill(p.processIdentifier, s) }
            }
            src.resume()
            sources.append(src)
        }
        defer { sources.forEach { $0.cancel() } }

        let group = DispatchGroup()
        for _ in 0..<min(parallel, cells.count) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                while true {
                    guard let i = state.locked({ st -> Int? in
                        guard st.stopping == 0, st.next < cells.count else { return nil }
                        st.next += 1
                        return st.next - 1
                    }) else { return }
                    let c = cells[i], dir = root.appendingPathComponent(c.name)
                    let row = Sweep.row(c, dir: dir)
                    if row.finished { say("cell \(c.name): finished"); continue }
                    let started = row.steps > 0 || FileManager.default.fileExists(atPath: dir.appendingPathComponent("trajectory.zot").path)
                    var args = ["train", "--config", files[i].path] + (started ? ["--resume", dir.path] : ["--out", dir.path])
                    args += ["--threads", String(threads)] + (device.device.map { ["--device", $0] } ?? [])
                    say("cell \(c.name): " + (started ? "resuming after step \(row.steps)" : "starting"))
                    let p = Process()
                    p.executableURL = bin
                    p.arguments = args
                    p.environment = ProcessInfo.processInfo.environment.merging([SweepChild.parentVariable: String(getpid())]) { $1 }
                    let logURL = root.appendingPathComponent(c.name + ".log")
                    if !FileManager.default.fileExists(atPath: logURL.path) { _ = FileManager.default.createFile(atPath: logURL.path, contents: nil) }
                    let log = try? FileHandle(forWritingTo: logURL)
                    _ = try? log?.seekToEnd()
                    p.standardOutput = log ?? FileHandle.nullDevice
                    p.standardError = log ?? FileHandle.nullDevice
                    // Started under the lock, so a stop either finds it running or prevents it.
                    let launched = state.locked { st -> Bool in
                        guard st.stopping == 0 else { return false }
                        do { try p.run() } catch { st.failed.append("\(c.name) (\(error))"); return false }
                        st.running.append(p)
                        return true
                    }
                    guard launched else { continue }
                    p.waitUntilExit()
                    try? log?.close()
                    state.locked { st in
                        st.running.removeAll { $0 === p }
                        if p.terminationStatus != 0 && st.stopping == 0 { st.failed.append("\(c.name) (exit \(p.terminationStatus); see \(logURL.path))") }
                    }
                    let r = Sweep.row(c, dir: dir)
                    if r.finished { say("cell \(c.name): best dev \(r.bestDev.map { String(format: "%.4f", $0) } ?? "—") at step \(r.bestStep ?? 0)") }
                }
            }
        }
        group.wait()

        let rows = cells.map { Sweep.row($0, dir: root.appendingPathComponent($0.name)) }
        let title = "sweep of \(config) (\(base.task)): " + (grid + cell).joined(separator: " ")
        try AtomicFile.write(Sweep.markdown(rows, title: title), to: root.appendingPathComponent("sweep.md"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let json: [String: AnyEncodable] = ["cells": AnyEncodable(rows), "best": AnyEncodable(Sweep.best(rows)?.cell)]
        try AtomicFile.write(try encoder.encode(json), to: root.appendingPathComponent("sweep.json"))
        try AtomicFile.write(Sweep.svg(rows, title: title), to: root.appendingPathComponent("dev.svg"))
        print(Sweep.markdown(rows, title: title), terminator: "")
        let (stopping, failed) = state.locked { ($0.stopping, $0.failed) }
        if stopping != 0 {
            printError("zotune: sweep stopped; the cells saved their runs. Resume with the same command.")
            Foundation.exit(128 + stopping)
        }
        if !failed.isEmpty { throw SweepFailed(cells: failed) }
    }
}

/// A cell's `train` lives no longer than its sweep. The sweep names itself in the child's
/// environment; the child asks the kernel for SIGTERM when its parent thread (the sweep's worker
/// that waits on it) ends — however the sweep ends, SIGKILL included — and then saves its run
/// after the step in progress and exits, as on a SIGTERM sent by hand. (A process group would
/// not do: a SIGKILLed sweep forwards nothing, and the kernel's parent-death signal needs no
/// watchdog.) Linux only; elsewhere the children of a killed sweep run to their end.
enum SweepChild {
    static let parentVariable = "ZOTUNE_SWEEP_PARENT"

    /// In `train`: binds this process to the sweep that started it, if one did.
    static func bindToParent() {
        guard let value = ProcessInfo.processInfo.environment[parentVariable], let pid = Int32(value) else { return }
        if zt_bind_to_parent(SIGTERM, pid) == 1 {
            printError("zotune: the sweep that started this run (pid \(pid)) has ended; not starting")
            Foundation.exit(128 + SIGTERM)
        }
    }
}

/// A line as it happens (stdout may be a file, where print waits for a full buffer).
func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// The workers' shared state, behind one lock.
final class SweepState: @unchecked Sendable {
    private let lock = NSLock()
    var running: [Process] = []
    var failed: [String] = []
    var next = 0
    var stopping: Int32 = 0

    func locked<T>(_ body: (SweepState) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(self)
    }
}

struct SweepFailed: Error, CustomStringConvertible {
    let cells: [String]
    var description: String { "sweep: \(cells.count) cell\(cells.count > 1 ? "s" : "") failed: " + cells.joined(separator: "; ") }
}

/// An Encodable of any type (sweep.json's two fields).
struct AnyEncodable: Encodable {
    let encode: (Encoder) throws -> Void
    init<T: Encodable>(_ value: T) { encode = value.encode }
    func encode(to encoder: Encoder) throws { try encode(encoder) }
}
