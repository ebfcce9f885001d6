import Foundation

/// A file-system failure in one line: the path and the cause ("runs/x: cannot create the
/// directory: Read-only file system"), never an NSError dump.
public struct FileError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let cause: String

    public init(path: String, cause: String) {
        self.path = path
        self.cause = cause
    }

    /// `doing` failed with errno `code` (e.g. "cannot create the directory", ENOSPC).
    public init(path: String, doing: String, errno code: Int32) {
        self.init(path: path, cause: "\(doing): \(String(cString: strerror(code)))")
    }

    public var description: String { "\(path): \(cause)" }

    /// `mkdir -p` that names the component at fault: one that exists as a file, or one that
    /// cannot be made (read-only file system, permission, no space).
    public static func createDirectory(_ url: URL) throws {
        var path = ""
        for part in url.standardizedFileURL.pathComponents {
            path = path.isEmpty ? part : (path == "/" ? "/" + part : path + "/" + part)
            var st = stat()
            if stat(path, &st) == 0 {
                guard st.st_mode & S_IFMT == S_IFDIR else { throw FileError(path: path, cause: "exists and is not a directory") }
                continue
            }
            if mkdir(path, 0o755) != 0 {
                let code = errno
                // Made by another process between the two calls: fine if it is a directory.
                if code == EEXIST, stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR { continue }
                throw FileError(path: path, doing: "cannot create the directory", errno: code)
            }
        }
    }

    /// Foundation's file errors (CocoaError, or an NSError wrapping errno) as one line naming the
    /// path; nil for any other error.
    public static func describe(_ error: Error) -> String? {
        guard let cause = cause(of: error) else { return nil }
        let ns = error as NSError
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        return path.map { "\($0): \(cause)" } ?? cause
    }

    /// The cause alone ("no such file or directory"), for a FileError that names the path itself.
    public static func cause(of error: Error) -> String? {
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return nil }
        let cause: String
        if ns.domain == NSPOSIXErrorDomain {
            cause = String(cString: strerror(Int32(ns.code)))
        } else if let under = ns.userInfo[NSUnderlyingErrorKey] as? NSError, under.domain == NSPOSIXErrorDomain {
            cause = String(cString: strerror(Int32(under.code)))
        } else {
            switch CocoaError.Code(rawValue: ns.code) {
            case .fileWriteOutOfSpace: cause = "no space left on the device"
            case .fileWriteVolumeReadOnly: cause = "read-only file system"
            case .fileWriteNoPermission, .fileReadNoPermission: cause = "permission denied"
            case .fileWriteFileExists: cause = "already exists"
            case .fileNoSuchFile, .fileReadNoSuchFile: cause = "no such file or directory"
            case .fileReadCorruptFile: cause = "unreadable (corrupt or of the wrong format)"
            case .fileReadTooLarge: cause = "too large to read"
            case .fileWriteInvalidFileName, .fileReadInvalidFileName: cause = "invalid file name"
            default: cause = "file operation failed (code \(ns.code))"
            }
        }
        return cause
    }
}
