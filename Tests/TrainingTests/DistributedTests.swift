// The MPI layer of data-parallel ZO (Open MPI loaded at run time): two ranks on loopback gather
// each other's numbers in rank order and count the bytes they send; without mpirun the same
// binary is a world of one. Skipped when Open MPI is not installed (Tests/setup.sh installs it).
import Foundation
import XCTest
import ZOTuneTraining

final class DistributedTests: XCTestCase {
    /// mpirun, once it has shown it can start two ranks of a plain program here (a container may
    /// forbid what Open MPI needs); skipped, with mpirun's words, when it cannot.
    func mpirun() throws -> URL {
        guard let path = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("mpirun not found (Debian: apt install openmpi-bin libopenmpi-dev)")
        }
        let run = URL(fileURLWithPath: path)
        let probe = try launch(run, ["--oversubscribe", "-np", "2", "/bin/true"])
        if probe.status != 0 { throw XCTSkip("mpirun cannot start 2 ranks here: \(probe.err.prefix(300))") }
        return run
    }

    /// Runs `exe` (mpirun or zotune) to the end: exit status, stdout, stderr.
    func launch(_ exe: URL, _ args: [String], extraEnv: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = exe
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env.merge(extraEnv) { _, b in b }
        p.environment = env
        // stderr to a file, stdout through a pipe read to the end: neither can block the child.
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-mpi-\(UUID().uuidString).err")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let out = Pipe(), err = try FileHandle(forWritingTo: errURL)
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let outText = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        try err.close()
        return (p.terminationStatus, outText, String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    func lines(_ exe: URL, _ args: [String]) throws -> [[String: Any]] {
        let (status, text, err) = try launch(exe, args)
        XCTAssertEqual(status, 0, err)
        return try text.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testTwoRanksGatherInRankOrder() throws {
        let run = try mpirun()
        let bin = try binary()
        let ranks = try lines(run, ["--oversubscribe", "-np", "2", bin.path, "mpi-check"]).sorted { ($0["rank"] as! Int) < ($1["rank"] as! Int) }
        XCTAssertEqual(ranks.map { $0["rank"] as? Int }, [0, 1])
        for r in ranks {
            XCTAssertEqual(r["size"] as? Int, 2)
            XCTAssertEqual(r["gathered"] as? [[Double]], [[0.25, 0], [1.25, 2]])
            XCTAssertEqual(r["hashes"] as? [String], [String(0xC0FFEE), String(0xC0FFEE + 1)])
            XCTAssertEqual(r["bytes_sent"] as? Int, 24, "two doubles and one u64")
            XCTAssertEqual(r["launched_by_mpi"] as? Bool, true)
        }
        let single = try lines(bin, ["mpi-check"])
        XCTAssertEqual(single.count, 1)
        XCTAssertEqual(single[0]["size"] as? Int, 1)
        XCTAssertEqual(single[0]["launched_by_mpi"] as? Bool, false)
    }

    /// A tiny model and SST-2-style data with sentences long enough that a batch of 32 forms
    /// several micro-batches (so both ranks compute some).
    func longWorkspace() throws -> (model: URL, data: URL, root: URL) {
        let w = try workspace()
        var rng = DataRNG(seed: 3)
        let words = "the film was a joy to watch and the cast did well but the plot dragged on far too long with nothing new to say".split(separator: " ")
        var tsv = "sentence\tlabel\n"
        for i in 0..<60 {
            tsv += (0..<(8 + rng.below(33))).map { _ in String(words[rng.below(words.count)]) }.joined(separator: " ") + " \t\(i % 2)\n"
        }
        try tsv.write(to: w.data.appendingPathComponent("SST-2/train.tsv"), atomically: true, encoding: .utf8)
        return w
    }

    /// 2 ranks on loopback == 1 process with the same global batch: the same trajectory and the
    /// same exported weights, bit for bit, for a stateless and a stateful optimizer; both ranks
    /// did part of the forwards; what a rank sends per step does not depend on the model.
    func testTwoRanksTrainExactlyAsOneProcess() throws {
        let run = try mpirun()
        let bin = try binary()
        let w = try longWorkspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        for opt in [["--optimizer", "mezo"], ["--optimizer", "zo-adam", "--lr", "1e-4"]] {
            let args = ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--device", "cpu",
                        "--steps", "6", "--batch-size", "32", "--lr", "1e-3", "--eps", "1e-2", "--eval-every", "3",
                        "--train-count", "40", "--dev-count", "10", "--test-count", "10", "--seed", "5", "--check-replicas-every", "2"] + opt
            let one = w.root.appendingPathComponent("one-\(opt[1])"), two = w.root.appendingPathComponent("two-\(opt[1])")
            let a = try launch(bin, args + ["--out", one.path])
            XCTAssertEqual(a.status, 0, a.err)
            let b = try launch(run, ["--oversubscribe", "-np", "2", bin.path] + args + ["--out", two.path])
            XCTAssertEqual(b.status, 0, b.err)
            XCTAssertTrue(b.out.contains("data parallel: 2 ranks"), b.out)
            for f in ["trajectory.zot", "model/model.safetensors"] {
                let x = try Data(contentsOf: one.appendingPathComponent(f)), y = try Data(contentsOf: two.appendingPathComponent(f))
                XCTAssertTrue(x == y, "\(opt[1]): \(f) differs between 1 process and 2 ranks")
            }
            // "zotune: rank r of 2: computed C of T micro-batches; sent B bytes (P per step, ...)"
            let reports = b.err.split(separator: "\n").filter { $0.hasPrefix("zotune: rank ") }
            XCTAssertEqual(reports.count, 2, b.err)
            var computed = 0
            func numbers(_ line: Substring) -> [Int] {
                line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            }
            for r in reports {
                let n = numbers(r)   // [rank, size, computed, formed, bytes, bytes per step]
                guard n.count == 6 else { XCTFail("unexpected report: \(r)"); continue }
                XCTAssertGreaterThan(n[2], 0, "every rank computes part of the forwards: \(r)")
                computed += n[2]
                XCTAssertLessThan(n[5], 4096, "bytes per step: \(r)")
            }
            XCTAssertEqual(computed, reports.first.map { numbers($0)[3] }, "each micro-batch computed once")
        }
    }

    /// Small minibatches too: at batch 2 one process forms one micro-batch of 2 sequences, and a
    /// split into one sequence per rank changes every GEMM's row count, which changes an element's
    /// bits with OpenBLAS's Haswell/Zen/SkylakeX kernels (a row's result depends on the product's
    /// shape and the row's place in it) — so the ranks must compute exactly one process's
    /// micro-batches. Batches 2, 3, 4, 16 on 2 ranks: trajectory (every g, every dev accuracy) and
    /// exported weights (`--keep-last`: the last step's, not the best dev checkpoint) equal one
    /// process's, bit for bit, over 3 steps with an evaluation between.
    func testTwoRanksMatchOneProcessAtSmallBatches() throws {
        let run = try mpirun()
        let bin = try binary()
        let w = try longWorkspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        for batch in [2, 3, 4, 16] {
            let args = ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--device", "cpu",
                        "--steps", "3", "--batch-size", "\(batch)", "--lr", "1e-3", "--eps", "1e-2", "--eval-every", "2",
                        "--train-count", "40", "--dev-count", "6", "--test-count", "0", "--seed", "5", "--threads", "1", "--keep-last"]
            let one = w.root.appendingPathComponent("one-\(batch)"), two = w.root.appendingPathComponent("two-\(batch)")
            let a = try launch(bin, args + ["--out", one.path])
            XCTAssertEqual(a.status, 0, a.err)
            let b = try launch(run, ["--oversubscribe", "-np", "2", bin.path] + args + ["--out", two.path])
            XCTAssertEqual(b.status, 0, b.err)
            for f in ["trajectory.zot", "model/model.safetensors"] {
                let x = try Data(contentsOf: one.appendingPathComponent(f)), y = try Data(contentsOf: two.appendingPathComponent(f))
                XCTAssertTrue(x == y, "batch \(batch): \(f) differs between 1 process and 2 ranks")
            }
        }
    }

    /// One replica's weight corrupted after step 3 (test hook): the check at step 4 stops the job
    /// on every rank with the error.
    func testReplicaDivergenceStopsTheJob() throws {
        let run = try mpirun()
        let bin = try binary()
        let w = try longWorkspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let r = try launch(run, ["--oversubscribe", "-np", "2", bin.path, "train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path,
                                 "--device", "cpu", "--steps", "8", "--batch-size", "32", "--lr", "1e-3", "--eps", "1e-2",
                                 "--train-count", "40", "--dev-count", "10", "--test-count", "10", "--check-replicas-every", "2",
                                 "--out", w.root.appendingPathComponent("f").path],
                           extraEnv: ["ZOTUNE_FAULT_CORRUPT_RANK": "1:3"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("after step 4 rank 1's weights differ from rank 0's"), r.err)
    }

    /// A run killed on one process resumes on two ranks (and the reverse) to the uninterrupted result.
    func testResumeOnAnotherNumberOfRanks() throws {
        let run = try mpirun()
        let bin = try binary()
        let w = try longWorkspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let args = ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--device", "cpu",
                    "--steps", "12", "--batch-size", "32", "--lr", "1e-3", "--eps", "1e-2", "--eval-every", "4", "--save-every", "1",
                    "--train-count", "40", "--dev-count", "10", "--test-count", "10", "--seed", "5"]
        let whole = w.root.appendingPathComponent("whole")
        XCTAssertEqual(try launch(bin, args + ["--out", whole.path]).status, 0)
        for (first, second) in [(false, true), (true, false)] {
            let dir = w.root.appendingPathComponent("resumed-\(first)")
            let p = Process()
            p.executableURL = first ? run : bin
            p.arguments = (first ? ["--oversubscribe", "-np", "2", bin.path] : []) + args + ["--out", dir.path]
            var env = ProcessInfo.processInfo.environment
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let traj = dir.appendingPathComponent("trajectory.zot")
            let deadline = Date().addingTimeInterval(120)
            while p.isRunning && Date() < deadline {
                if let t = try? TrajectoryFile.read(traj), t.header.progress.completedSteps >= 3 { break }
                usleep(20_000)
            }
            XCTAssertTrue(p.isRunning, "finished before it could be stopped")
            kill(p.processIdentifier, SIGTERM)   // mpirun forwards it; every rank stops after the same step
            p.waitUntilExit()
            let resumed = try launch(second ? run : bin, (second ? ["--oversubscribe", "-np", "2", bin.path] : []) + args + ["--resume", dir.path])
            XCTAssertEqual(resumed.status, 0, resumed.err)
            for f in ["trajectory.zot", "model/model.safetensors"] {
                XCTAssertTrue(try Data(contentsOf: whole.appendingPathComponent(f)) == Data(contentsOf: dir.appendingPathComponent(f)),
                              "\(f): \(first ? 2 : 1) rank(s) then \(second ? 2 : 1) differ from the uninterrupted run")
            }
        }
    }
}
