// Every fuzz target: its seeds are accepted by their own reader, a short fixed-seed mutation
// run finishes with no crash and no input slower than the hang limit (the CI smoke; bench/fuzz.sh
// runs the long sessions), and every input that ever crashed a reader (regressions/<target>/)
// is read again without crashing.
import Foundation
import XCTest
import ZOTuneFuzzing

final class FuzzTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func work(_ name: String) -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-fuzztest-\(name)-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testEveryTargetSurvivesASmokeRun() throws {
        XCTAssertEqual(Set(fuzzTargets.map(\.name)).count, fuzzTargets.count)
        for target in fuzzTargets {
            let harness = try FuzzHarness(target: target, root: root, work: work(target.name))
            harness.hangLimit = 2.0   // debug build, a loaded CI machine
            let (report, refused) = harness.fuzz(count: 150, seed: 20261204)
            XCTAssertEqual(refused, [], "\(target.name): seeds refused by their own reader")
            XCTAssertEqual(report.inputs, 150 + target.seeds.count)
            XCTAssertEqual(report.hangs, 0, "\(target.name): slowest input \(report.slowest) s")
            // Mutants must be refused sometimes, or the target is not reading what it is given.
            XCTAssertLessThan(report.accepted, report.inputs, target.name)
        }
    }

    func testRegressionsReplayWithoutCrashing() throws {
        let dir = root.appendingPathComponent("Tests/Fuzz/regressions")
        var replayed = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()) ?? [] {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path, isDirectory: &isDir), isDir.boolValue else { continue }
            let target = try XCTUnwrap(fuzzTarget(named: name), "regressions/\(name) is not a fuzz target")
            let harness = try FuzzHarness(target: target, root: root, work: work(name))
            var report = FuzzReport(target: name)
            for file in try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent(name).path).sorted() {
                harness.run([UInt8](try Data(contentsOf: dir.appendingPathComponent(name).appendingPathComponent(file))), report: &report)
                replayed += 1
            }
            XCTAssertEqual(report.hangs, 0, name)
        }
        print("replayed \(replayed) regression inputs")
    }

    /// The mutator is deterministic and changes its input.
    func testMutatorIsSeededAndMutates() {
        let seed = [UInt8]("{\"text\": \"a\", \"label\": 1}".utf8)
        var a = Mutator(seed: 3), b = Mutator(seed: 3), c = Mutator(seed: 4)
        let xs = (0..<50).map { _ in a.mutate(seed) }
        XCTAssertEqual(xs, (0..<50).map { _ in b.mutate(seed) })
        XCTAssertNotEqual(xs, (0..<50).map { _ in c.mutate(seed) })
        XCTAssertGreaterThan(xs.filter { $0 != seed }.count, 45)
    }
}
