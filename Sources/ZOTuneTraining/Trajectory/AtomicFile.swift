import Foundation
import ZOTuneModels

/// Writes files so a crash, a full disk or a kill never leaves a half-written file in place of a
/// good one: write `name.tmp-PID`, fsync, rename over `name`.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw fileError(url, "cannot write: \(String(cString: strerror(errno)))") }
        var ok = true
        var why = ""
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { ok = false; why = String(cString: strerror(errno)); return }
                offset += n
            }
        }
        if ok && fsync(fd) != 0 { ok = false; why = String(cString: strerror(errno)) }
        close(fd)
        guard ok else {
            unlink(tmp.path)
            throw fileError(url, "cannot write: \(why); the previous file is kept")
        }
        guard rename(tmp.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp.path)
            throw fileError(url, "cannot rename into place: \(reason)")
        }
    }

    public static func write(_ text: String, to url: URL) throws { try write(Data(text.utf8), to: url) }

    static func fileError(_ url: URL, _ message: String) -> Error { FileError(path: url.path, cause: message) }
}
