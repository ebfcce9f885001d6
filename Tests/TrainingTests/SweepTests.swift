import Foundation
import XCTest
import ZOTuneTraining

/// `zotune sweep`'s cells: values with commas, options of the cell's optimizer, and a sweep killed
/// with SIGKILL, which must take its running cell down with it and resume to the same table.
final class SweepTests: XCTestCase {
    /// `\,` is a comma inside a value, in --grid and --cell alike; the cell's name writes it back
    /// the same way, so cells that differ only there keep apart.
    func testCellValuesWithCommas() throws {
        XCTAssertEqual(Sweep.splitList(#"a=q\,v,b=1,c=x\\y,d=\n"#), ["a=q,v", "b=1", #"c=x\y"#, #"d=\n"#])
        let cells = try Sweep.cells(grid: [#"dizo-layers=q\,v,k"#], list: [#"optimizer=dizo,dizo-layers=q\,k\,v,lr=1e-3"#])
        XCTAssertEqual(cells.map { $0.settings.map(\.value) }, [["q,v"], ["k"], ["dizo", "q,k,v", "1e-3"]])
        XCTAssertEqual(cells.map(\.name), [#"dizo-layers=q\,v"#, "dizo-layers=k", #"optimizer=dizo,dizo-layers=q\,k\,v,lr=1e-3"#])
        // An option of the cell's optimizer sets its field; a list field takes the items.
        var base = TrainingRun(model: "m", task: "sst2")
        base.optimizer = .defaults(.dizo)
        let runs = try cells.map { try Sweep.run(base, cell: $0) }
        XCTAssertEqual(runs.map { $0.optimizer!.options(DiZOOptions.self)!.layers }, [["q", "v"], ["k"], ["q", "k", "v"]])
        XCTAssertEqual(runs[2].lr, 1e-3)
        let muon = try Sweep.run(base, cell: try Sweep.cells(grid: [], list: ["optimizer=zo-muon,ns-steps=5"])[0])
        XCTAssertEqual(muon.optimizer!.options(ZOMuonOptions.self)?.nsSteps, 5)
        // A key that is neither the run's nor the optimizer's is refused, naming it.
        XCTAssertThrowsError(try Sweep.run(base, cell: try Sweep.cells(grid: [], list: ["optimizer=mezo,ns-steps=5"])[0])) { e in
            XCTAssertTrue("\(e)".contains("ns-steps") && "\(e)".contains("mezo"), "\(e)")
        }
        // Two cells that differ only by an escaped comma are two cells.
        XCTAssertEqual(try Sweep.cells(grid: [], list: [#"labels=a\,b"#, "labels=a,b=1"]).count, 2)
    }

    /// A sweep killed with SIGKILL while a cell trains: the cell's `train` stops (after its step,
    /// saving the run) instead of running on as an orphan, and the sweep run again ends with the
    /// table of a sweep never stopped.
    func testKilledSweepLeavesNoOrphanAndResumes() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let base = try sweepBase(w)
        func sweep(_ out: URL) throws -> Process { try startSweep(bin, base: base, grids: ["lr=1e-2,1e-3"], out: out) }
        /// The processes whose command line names `dir` (the cells' `train`s).
        func children(of dir: URL) -> [Int32] {
            let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap(Int32.init) ?? []
            return pids.filter { pid in
                guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
                let args = d.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                return args.contains("train") && args.contains { $0.hasPrefix(dir.path + "/") }
            }
        }
        let whole = w.root.appendingPathComponent("whole"), killed = w.root.appendingPathComponent("killed")
        let a = try sweep(whole)
        a.waitUntilExit()
        XCTAssertEqual(a.terminationStatus, 0)

        let b = try sweep(killed)
        let second = killed.appendingPathComponent("lr=1e-3/trajectory.zot")
        waitForSavedSteps(b, trajectory: second, atLeast: 5, poll: 10_000)
        let running = children(of: killed)
        XCTAssertEqual(running.count, 1, "the second cell's train is not running")
        kill(b.processIdentifier, SIGKILL)
        b.waitUntilExit()
        // The child ends its step, saves and exits: a tiny-model step takes milliseconds.
        let gone = Date().addingTimeInterval(10)
        while !children(of: killed).isEmpty && Date() < gone { usleep(20_000) }
        XCTAssertEqual(children(of: killed), [], "a cell's train outlived its SIGKILLed sweep")
        let half = try TrajectoryFile.read(second).header.progress
        XCTAssertLessThan(half.completedSteps, 40, "the second cell ran to its end after the sweep was killed")
        XCTAssertNotEqual(half.finished, true)

        let c = try sweep(killed)
        c.waitUntilExit()
        XCTAssertEqual(c.terminationStatus, 0)
        let x = try timelessSweepTable(whole), y = try timelessSweepTable(killed)
        XCTAssertEqual(x.cells.count, 2)
        XCTAssertTrue(x.cells.allSatisfy(\.finished))
        XCTAssertEqual(x.cells, y.cells)
        XCTAssertEqual(x.best, y.best)
    }
}
