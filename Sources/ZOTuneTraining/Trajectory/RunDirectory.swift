import Foundation
import ZOTuneModels

/// The run directory a `train` or `pretrain` command writes, chosen from `--out`, `--resume` and
/// `--overwrite` so that no run is lost without a word:
/// - `--resume DIR` needs a run in DIR (its trajectory.zot); a finished one is left as it is;
/// - `--out DIR` starts a run, and refuses a DIR that already holds one unless `--overwrite`
///   (which removes that run's files, and only those);
/// - the directory (and its parents) is created with one-line errors, and locked while this
///   value lives (`lock: false` for the data-parallel ranks that write nothing).
public final class RunDirectory {
    public enum State: Equatable {
        /// A new run (the directory holds none).
        case fresh
        /// An interrupted run to continue.
        case resume
        /// A run whose ending is written; resuming it has nothing to do.
        case finished(RunProgress)
    }

    public let url: URL
    public let state: State
    private let lock: RunLock?

    /// The files and directories a run writes: what `--overwrite` removes.
    public static let runFiles = ["trajectory.zot", "metrics.jsonl", "loss.svg", "summary.json", "trainable.safetensors",
                                  "best.safetensors", "model", "adapter", "init"]

    public init(out: String?, resume: String?, overwrite: Bool, lock: Bool = true) throws {
        let fm = FileManager.default
        if let out, let resume, URL(fileURLWithPath: out).standardizedFileURL != URL(fileURLWithPath: resume).standardizedFileURL {
            throw RunDirectoryError("--out \(out) and --resume \(resume) name different run directories; --resume DIR alone continues the run in DIR")
        }
        if resume != nil && overwrite { throw RunDirectoryError("--overwrite starts over and --resume continues: give one of them") }
        guard let path = resume ?? out else { throw RunDirectoryError("give --out DIR (or --resume DIR)") }
        url = URL(fileURLWithPath: path)
        let trajectory = url.appendingPathComponent("trajectory.zot")
        if resume != nil {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
                throw RunDirectoryError("\(path): no run to resume (the directory does not exist); start one with --out \(path)")
            }
            guard isDir.boolValue else { throw FileError(path: path, cause: "exists and is not a directory") }
            guard fm.fileExists(atPath: trajectory.path) else {
                throw RunDirectoryError("\(path): no run to resume (no trajectory.zot); start one with --out \(path)")
            }
        }
        try FileError.createDirectory(url)
        self.lock = lock ? try RunLock(runDir: url) : nil
        // Read under the lock: another process cannot be writing the trajectory now. A rank that
        // writes nothing leaves a new run's checks to rank 0 (which may be removing the old files).
        let saved = fm.fileExists(atPath: trajectory.path) && (lock || resume != nil) ? try TrajectoryFile.read(trajectory).header : nil
        if resume != nil {
            guard let saved else { throw RunDirectoryError("\(path): no run to resume (no trajectory.zot)") }
            state = saved.progress.finished == true ? .finished(saved.progress) : .resume
        } else if let saved {
            guard overwrite else {
                let p = saved.progress
                if p.finished == true {
                    throw RunDirectoryError("\(path) holds a finished run (\(p.completedSteps) steps; results in summary.json): choose another --out, or replace it with --overwrite")
                }
                throw RunDirectoryError("\(path) holds a run stopped after step \(p.completedSteps) of \(saved.run.steps): continue it with --resume \(path), or replace it with --overwrite")
            }
            if lock {
                for name in Self.runFiles where fm.fileExists(atPath: url.appendingPathComponent(name).path) {
                    do { try fm.removeItem(at: url.appendingPathComponent(name)) } catch {
                        throw FileError(path: url.appendingPathComponent(name).path, cause: "cannot remove the old run's file (\(FileError.cause(of: error) ?? "\(error)"))")
                    }
                }
            }
            state = .fresh
        } else {
            state = .fresh
        }
    }

    public var resuming: Bool { state == .resume }

    /// One line for a finished run that was asked to resume.
    public func finishedNotice(_ progress: RunProgress) -> String {
        "\(url.path): the run is finished (\(progress.completedSteps) steps, best dev \(String(format: "%.4f", progress.bestDev)) at step " +
        "\(progress.bestStep)); nothing to do. Its results are in summary.json; start a new run with --out, or replace this one with --out \(url.path) --overwrite"
    }
}

/// A run-directory choice that cannot go ahead (printed as its one line).
public struct RunDirectoryError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
