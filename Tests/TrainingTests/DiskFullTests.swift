// A full disk while saving: on a small tmpfs (skipped where mounting is not permitted, e.g.
// without root), a failed write names the file, keeps the previous file and leaves no temp file,
// and a training run that cannot export still leaves a complete trajectory to rebuild from.
import Foundation
import XCTest
import ZOTuneTraining

/// A tmpfs of `kib` KiB (mounted read-only with `readOnly`), unmounted at the end of the test.
func smallFilesystem(_ test: XCTestCase, kib: Int, readOnly: Bool = false) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-full-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/mount")
    p.arguments = ["-t", "tmpfs", "-o", "size=\(kib)k" + (readOnly ? ",ro" : ""), "tmpfs", dir.path]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    guard FileManager.default.isExecutableFile(atPath: "/bin/mount"), (try? p.run()) != nil else {
        throw XCTSkip("cannot run mount")
    }
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        try? FileManager.default.removeItem(at: dir)
        throw XCTSkip("mounting a tmpfs is not permitted here (needs root)")
    }
    test.addTeardownBlock {
        let u = Process()
        u.executableURL = URL(fileURLWithPath: "/bin/umount")
        u.arguments = [dir.path]
        try? u.run()
        u.waitUntilExit()
        try? FileManager.default.removeItem(at: dir)
    }
    return dir
}

final class DiskFullTests: XCTestCase {
    func testAtomicWriteOnAFullDiskKeepsThePreviousFile() throws {
        let dir = try smallFilesystem(self, kib: 64)
        let target = dir.appendingPathComponent("trajectory.zot")
        let good = Data(repeating: 7, count: 4096)
        try AtomicFile.write(good, to: target)
        // Fill what is left.
        let filler = FileHandle(forWritingAtPath: { FileManager.default.createFile(atPath: dir.appendingPathComponent("filler").path, contents: nil)
            return dir.appendingPathComponent("filler").path }())!
        while (try? filler.write(contentsOf: Data(repeating: 0, count: 4096))) != nil {}
        try? filler.close()
        XCTAssertThrowsError(try AtomicFile.write(Data(repeating: 9, count: 32768), to: target)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(target.path) && text.contains("previous file is kept"), text)
        }
        XCTAssertEqual(try Data(contentsOf: target), good)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["filler", "trajectory.zot"], "no temp file left")
    }

    /// The run's saves fit, the 200 KB export does not: the command fails naming the file, and the
    /// trajectory is complete — `replay` rebuilds the same weights elsewhere.
    func testTrainingThatCannotExportKeepsItsTrajectory() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let whole = w.root.appendingPathComponent("whole")
        let a = try train(bin, w, ["--out", whole.path])
        a.waitUntilExit()
        XCTAssertEqual(a.terminationStatus, 0)

        let full = try smallFilesystem(self, kib: 128).appendingPathComponent("run")
        let (status, text) = try runCapturing(bin, ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--device", "cpu",
                                                    "--steps", "12", "--batch-size", "4", "--lr", "1e-3", "--eps", "1e-2", "--eval-every", "4",
                                                    "--train-count", "6", "--dev-count", "3", "--test-count", "3", "--save-every", "1", "--seed", "5",
                                                    "--out", full.path])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(text.contains("model.safetensors") && text.contains("No space left on device"), text)
        let traj = try TrajectoryFile.read(full.appendingPathComponent("trajectory.zot"))
        XCTAssertEqual(traj.header.progress.completedSteps, 12)

        let rebuilt = w.root.appendingPathComponent("rebuilt")
        let (replayed, _) = try runCapturing(bin, ["replay", "--base", w.model.path, "--trajectory", full.appendingPathComponent("trajectory.zot").path,
                                                   "--out", rebuilt.path, "--device", "cpu"])
        XCTAssertEqual(replayed, 0)
        XCTAssertTrue(try Data(contentsOf: whole.appendingPathComponent("model/model.safetensors")) ==
                      Data(contentsOf: rebuilt.appendingPathComponent("model.safetensors")))
    }
}
