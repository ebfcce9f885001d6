// The MPI layer of data-parallel ZO (Open MPI loaded at run time): two ranks on loopback gather
// each other's numbers in rank order and count the bytes they send; without mpirun the same
// binary is a world of one. Skipped when Open MPI is not installed (Tests/setup.sh installs it).
import Foundation
import XCTest

final class DistributedTests: XCTestCase {
    func mpirun() throws -> URL {
        for p in ["/usr/bin/mpirun", "/usr/local/bin/mpirun"] where FileManager.default.isExecutableFile(atPath: p) { return URL(fileURLWithPath: p) }
        throw XCTSkip("mpirun not found (Debian: apt install openmpi-bin libopenmpi-dev)")
    }

    func lines(_ exe: URL, _ args: [String]) throws -> [[String: Any]] {
        let p = Process()
        p.executableURL = exe
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
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
}
