import Foundation
import XCTest
import ZOTuneTraining

/// KillResumeTests' real interruption for the frontier optimizers: `zotune train` killed with
/// SIGKILL after 5 saved steps, then `--resume`d, ends with the uninterrupted run's trajectory and
/// exported weights bit for bit; the export is keep-best's (the best dev step's weights, the
/// default), and `zotune replay` of the trajectory writes those same bytes.
final class FrontierKillResumeTests: XCTestCase {
    func testKilledFrontierRunsResumeToTheSameResult() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        // Small settings keep each run a few seconds on the tiny model: 3 FZOO probes (4 forwards),
        // SVRG's full step over 2 minibatches, 2 rank-1 directions.
        let optimizers: [[String]] = [["--optimizer", "fzoo", "--probes", "3"], ["--optimizer", "sparse-mezo"],
                                      ["--optimizer", "mezo-svrg", "--anchor-batches", "2"],
                                      ["--optimizer", "lowrank-spsa", "--directions", "2", "--rank", "1"]]
        for opt in optimizers {
            let name = opt[1]
            let whole = w.root.appendingPathComponent("whole-\(name)"), killed = w.root.appendingPathComponent("killed-\(name)")
            let a = try train(bin, w, opt + ["--out", whole.path])
            a.waitUntilExit()
            XCTAssertEqual(a.terminationStatus, 0, name)

            let b = try train(bin, w, opt + ["--out", killed.path])
            let traj = killed.appendingPathComponent("trajectory.zot")
            let deadline = Date().addingTimeInterval(120)
            while b.isRunning && Date() < deadline {
                if let d = try? Data(contentsOf: traj), let s = String(data: d.prefix(4096), encoding: .isoLatin1),
                   let r = s.range(of: "\"completed_steps\":"), let n = Int(s[r.upperBound...].prefix { $0.isNumber }), n >= 5 { break }
                usleep(20_000)
            }
            XCTAssertTrue(b.isRunning, "\(name): the run finished before it could be killed")
            kill(b.processIdentifier, SIGKILL)
            b.waitUntilExit()
            let exported = "model/model.safetensors"
            XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent(exported).path), name)

            let c = try train(bin, w, opt + ["--resume", killed.path])
            c.waitUntilExit()
            XCTAssertEqual(c.terminationStatus, 0, name)
            let x = try TrajectoryFile.read(whole.appendingPathComponent("trajectory.zot"))
            let y = try TrajectoryFile.read(killed.appendingPathComponent("trajectory.zot"))
            XCTAssertEqual(x.records, y.records, "\(name): trajectory records differ")
            XCTAssertEqual(Set(x.records.filter { $0.kind == .direction }.map(\.step)).count, 12, name)
            XCTAssertEqual(x.header.progress.bestStep, y.header.progress.bestStep, name)
            let mx = try Data(contentsOf: whole.appendingPathComponent(exported))
            XCTAssertTrue(mx == (try Data(contentsOf: killed.appendingPathComponent(exported))), "\(name): exported weights differ after kill + resume")

            // Keep-best: replay of the steps before the best dev step writes the exported bytes.
            let r = Process()
            r.executableURL = bin
            let replayed = w.root.appendingPathComponent("replayed-\(name)")
            r.arguments = ["replay", "--base", w.model.path, "--trajectory", whole.appendingPathComponent("trajectory.zot").path,
                           "--out", replayed.path, "--device", "cpu"]
            r.standardOutput = FileHandle.nullDevice
            r.standardError = FileHandle.nullDevice
            try r.run()
            r.waitUntilExit()
            XCTAssertEqual(r.terminationStatus, 0, name)
            XCTAssertTrue(try Data(contentsOf: replayed.appendingPathComponent("model.safetensors")) == mx,
                          "\(name): replay to the best step (\(x.header.progress.bestStep)) differs from the export")
        }
    }
}
