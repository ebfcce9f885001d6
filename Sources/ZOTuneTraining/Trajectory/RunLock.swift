import Foundation
import ZOTuneModels

/// One process at a time in a run directory: an exclusive `flock` on `RUN/.zotune.lock`, held
/// while this object lives. Two runs writing one trajectory would corrupt each other's resume
/// point; the kernel drops the lock when its holder dies, so a killed run never blocks the next.
public final class RunLock {
    public let url: URL
    private let fd: Int32

    public init(runDir: URL) throws {
        try FileError.createDirectory(runDir)
        url = runDir.appendingPathComponent(".zotune.lock")
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ModelError(file: url.path, field: "run directory", "cannot create the lock file: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            throw ModelError(file: runDir.path, field: "run directory",
                             "in use by another zotune process (pid \(holder)); wait for it to end or stop it, or choose another directory")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
