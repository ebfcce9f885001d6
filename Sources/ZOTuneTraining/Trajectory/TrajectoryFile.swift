import Foundation
import ZOTuneKernels
import ZOTuneModels

/// The trajectory checkpoint (ALGORITHMS.md §3): a run's update as (seed, η, g) per step and
/// direction, plus what is needed to redo it — the base checkpoint's content hash, the z-stream
/// version, the trainable-set spec and the hyperparameters.
///
/// Layout: "ZOTRAJ" 0x00 0x01 (8 bytes) · u32 LE header length · header JSON (UTF-8) ·
/// records of 24 bytes: u32 step, u16 direction, u16 zero, u64 seed, f32 lr, f32 g (all LE).
public struct TrajectoryFile: Sendable {
    public static let magic: [UInt8] = Array("ZOTRAJ".utf8) + [0, 1]
    public static let formatVersion = 1
    public static let recordSize = 24

    /// Hyperparameters and provenance (JSON object with string/number/bool values).
    public var header: [String: Any] { headerStorage.value }
    private var headerStorage: Box
    public var records: [ZORecord]

    final class Box: @unchecked Sendable {
        var value: [String: Any]
        init(_ v: [String: Any]) { value = v }
    }

    public init(header: [String: Any], records: [ZORecord]) {
        var h = header
        h["format"] = "zotune-trajectory"
        h["version"] = Self.formatVersion
        h["z_stream_version"] = Int(ZT_Z_STREAM_VERSION)
        headerStorage = Box(h)
        self.records = records
    }

    public mutating func set(_ key: String, _ value: Any) {
        var h = headerStorage.value
        h[key] = value
        headerStorage = Box(h)
    }

    public func encoded() throws -> Data {
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        var data = Data(Self.magic)
        var len = UInt32(json.count).littleEndian
        data.append(Data(bytes: &len, count: 4))
        data.append(json)
        var raw = [UInt8](repeating: 0, count: records.count * Self.recordSize)
        for (i, r) in records.enumerated() {
            let o = i * Self.recordSize
            func put<T: FixedWidthInteger>(_ v: T, _ at: Int) { withUnsafeBytes(of: v.littleEndian) { raw.replaceSubrange((o + at)..<(o + at + $0.count), with: $0) } }
            put(r.step, 0); put(r.direction, 4); put(UInt16(0), 6); put(r.seed, 8)
            put(r.lr.bitPattern, 16); put(r.projectedGrad.bitPattern, 20)
        }
        data.append(contentsOf: raw)
        return data
    }

    public func write(to url: URL) throws { try AtomicFile.write(try encoded(), to: url) }

    public static func read(_ url: URL) throws -> TrajectoryFile {
        let file = url.path
        guard let data = try? Data(contentsOf: url) else { throw ModelError(file: file, field: "file", "cannot read the trajectory") }
        let bytes = [UInt8](data)
        guard bytes.count >= 12, Array(bytes[0..<6]) == Array(magic[0..<6]) else {
            throw ModelError(file: file, field: "magic", "not a ZOTune trajectory file")
        }
        let len = Int(UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24)
        guard 12 + len <= bytes.count else { throw ModelError(file: file, field: "header length", "\(len) bytes run past the end of the file") }
        guard let header = try? JSONSerialization.jsonObject(with: Data(bytes[12..<(12 + len)])) as? [String: Any] else {
            throw ModelError(file: file, field: "header", "malformed JSON")
        }
        guard (header["version"] as? Int) == formatVersion else {
            throw ModelError(file: file, field: "version", "format version \(header["version"] ?? "none"), this build reads \(formatVersion)")
        }
        guard (header["z_stream_version"] as? Int) == Int(ZT_Z_STREAM_VERSION) else {
            throw ModelError(file: file, field: "z_stream_version", "written with z stream \(header["z_stream_version"] ?? "none"); this build generates version \(ZT_Z_STREAM_VERSION), so it cannot replay it")
        }
        let body = bytes.count - 12 - len
        guard body % recordSize == 0 else { throw ModelError(file: file, field: "records", "\(body) bytes is not a whole number of \(recordSize)-byte records (truncated?)") }
        var records: [ZORecord] = []
        records.reserveCapacity(body / recordSize)
        for i in 0..<(body / recordSize) {
            let o = 12 + len + i * recordSize
            func get<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
                var v: T = 0
                for k in 0..<(T.bitWidth / 8) { v |= T(bytes[o + at + k]) << (8 * k) }
                return v
            }
            records.append(ZORecord(step: get(0, UInt32.self), direction: get(4, UInt16.self), seed: get(8, UInt64.self),
                                    lr: Float(bitPattern: get(16, UInt32.self)), projectedGrad: Float(bitPattern: get(20, UInt32.self))))
        }
        return TrajectoryFile(header: header, records: records)
    }

    // Typed header access with errors naming the field.
    public func string(_ key: String, file: String) throws -> String {
        guard let v = header[key] as? String else { throw ModelError(file: file, field: key, "missing or not a string") }
        return v
    }

    public func number(_ key: String, file: String) throws -> Double {
        guard let v = header[key] as? NSNumber else { throw ModelError(file: file, field: key, "missing or not a number") }
        return v.doubleValue
    }
}

/// Content hash of a checkpoint's weight files (the GGUF file, or the directory's safetensors in
/// name order), hex. Identifies the base a trajectory must be replayed on.
public func checkpointHash(_ path: String) throws -> String {
    var isDir: ObjCBool = false
    FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
    var files = [path]
    if isDir.boolValue {
        files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".safetensors") }.sorted().map { path + "/" + $0 }
    }
    var h: UInt64 = 0x5A07_7E57
    for f in files {
        let data = try Data(contentsOf: URL(fileURLWithPath: f), options: .alwaysMapped)
        h = data.withUnsafeBytes { zt_hash64($0.baseAddress, UInt64($0.count), h) }
    }
    return String(format: "%016llx", h)
}
