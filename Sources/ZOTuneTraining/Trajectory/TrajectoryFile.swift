import Foundation
import ZOTuneKernels
import ZOTuneModels

/// The trajectory checkpoint (ALGORITHMS.md §3): a run's updates as a few scalars per step and
/// direction, plus the header that says how to redo them (RunHeader).
///
/// Version 3: "ZOTRAJ" 0x00 0x03 · u32 header length · header JSON (UTF-8) · records · u64
/// checksum. A record is u32 step, u16 direction, u16 kind, u32 block, u64 seed, f32 lr, then one
/// f32 per header `record_fields` entry (24 + 4k bytes). The checksum (zt_hash64, seed 0x2A70)
/// covers every byte before it, so a flipped or truncated byte anywhere is an error, never wrong
/// weights. All integers and floats little-endian.
///
/// Version 2 (read for replay and resume): the same without the block field (20 + 4k bytes).
///
/// Version 1 (MeZO only, read for replay and resume): "ZOTRAJ" 0x00 0x01 · u32 header length ·
/// flat header JSON · 24-byte records (u32 step, u16 direction, u16 0, u64 seed, f32 lr, f32 g),
/// no checksum.
public struct TrajectoryFile: Sendable {
    public static let formatVersion = 3
    static let magicPrefix: [UInt8] = Array("ZOTRAJ".utf8) + [0]
    static let checksumSeed: UInt64 = 0x2A70

    public var header: RunHeader
    public var records: [ZORecord]

    public init(header: RunHeader, records: [ZORecord]) {
        self.header = header
        self.records = records
    }

    static func recordSize(fields: Int, version: Int = formatVersion) -> Int { (version >= 3 ? 24 : 20) + 4 * fields }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var h = header
        h.version = Self.formatVersion
        let json = try encoder.encode(h)
        let fields = header.recordFields.count
        var out = [UInt8]()
        out.reserveCapacity(8 + 4 + json.count + records.count * Self.recordSize(fields: fields) + 8)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        out += Self.magicPrefix + [UInt8(Self.formatVersion)]
        put(UInt32(json.count))
        out += json
        for r in records {
            precondition(r.values.count == fields, "record of step \(r.step) has \(r.values.count) values, the optimizer declares \(fields)")
            put(r.step); put(r.direction); put(r.kind.rawValue); put(r.block); put(r.seed); put(r.lr.bitPattern)
            for v in r.values { put(v.bitPattern) }
        }
        put(out.withUnsafeBytes { zt_hash64($0.baseAddress, UInt64($0.count), Self.checksumSeed) })
        return Data(out)
    }

    public func write(to url: URL) throws { try AtomicFile.write(try encoded(), to: url) }

    public static func read(_ url: URL) throws -> TrajectoryFile {
        let file = url.path
        guard let data = try? Data(contentsOf: url) else { throw ModelError(file: file, field: "file", "cannot read the trajectory") }
        let bytes = [UInt8](data)
        guard bytes.count >= 12, Array(bytes[0..<7]) == magicPrefix else {
            throw ModelError(file: file, field: "magic", "not a ZOTune trajectory file")
        }
        func u32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[o + $1]) << (8 * $1) } }
        func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[o + $1]) << (8 * $1) } }
        let version = Int(bytes[7])
        guard (1...3).contains(version) else {
            throw ModelError(file: file, field: "version", "format version \(version); this build reads 1 to 3")
        }
        let len = Int(u32(8))
        let trailer = version >= 2 ? 8 : 0
        guard 12 + len + trailer <= bytes.count else {
            throw ModelError(file: file, field: "header length", "\(len) bytes run past the end of the file (truncated?)")
        }
        if version >= 2 {
            let end = bytes.count - 8
            let sum = bytes.withUnsafeBytes { zt_hash64($0.baseAddress, UInt64(end), checksumSeed) }
            guard sum == u64(end) else {
                throw ModelError(file: file, field: "checksum", "the file is corrupt (checksum mismatch: a byte was changed or the file was cut short); it cannot be replayed")
            }
        }
        let json = Data(bytes[12..<(12 + len)])
        let header: RunHeader
        if version == 1 {
            guard let h = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else {
                throw ModelError(file: file, field: "header", "malformed JSON")
            }
            guard (h["z_stream_version"] as? Int) == Int(ZT_Z_STREAM_VERSION) else {
                throw ModelError(file: file, field: "z_stream_version", "written with z stream \(h["z_stream_version"] ?? "none"); this build generates version \(ZT_Z_STREAM_VERSION), so it cannot replay it")
            }
            header = try RunHeader.fromVersion1(h, file: file)
        } else {
            do {
                header = try JSONDecoder().decode(RunHeader.self, from: json)
            } catch let e as DecodingError {
                throw ModelError(file: file, field: "header", describe(e))
            }
            guard header.zStreamVersion == Int(ZT_Z_STREAM_VERSION) else {
                throw ModelError(file: file, field: "z_stream_version", "written with z stream \(header.zStreamVersion); this build generates version \(ZT_Z_STREAM_VERSION), so it cannot replay it")
            }
        }
        let fields = header.recordFields.count
        let size = recordSize(fields: fields, version: version)
        let head = version >= 3 ? 24 : 20
        let body = bytes.count - 12 - len - trailer
        guard body % size == 0 else {
            throw ModelError(file: file, field: "records", "\(body) bytes is not a whole number of \(size)-byte records (truncated?)")
        }
        var records: [ZORecord] = []
        records.reserveCapacity(body / size)
        for i in 0..<(body / size) {
            let o = 12 + len + i * size
            let values = (0..<fields).map { Float(bitPattern: u32(o + head + 4 * $0)) }
            let rawKind = UInt16(bytes[o + 6]) | UInt16(bytes[o + 7]) << 8
            guard let kind = ZORecord.Kind(rawValue: rawKind) else {
                throw ModelError(file: file, field: "records[\(i)].kind", "unknown record kind \(rawKind)")
            }
            let tail = head - 12   // seed and lr follow the block field in version 3
            records.append(ZORecord(step: u32(o), direction: UInt16(bytes[o + 4]) | UInt16(bytes[o + 5]) << 8, kind: kind,
                                    block: version >= 3 ? u32(o + 8) : 0,
                                    seed: u64(o + tail), lr: Float(bitPattern: u32(o + tail + 8)), values: values))
        }
        return TrajectoryFile(header: header, records: records)
    }
}

/// A decoding error as "field.path: what".
func describe(_ e: DecodingError) -> String {
    func path(_ c: [CodingKey]) -> String { c.map(\.stringValue).joined(separator: ".") }
    switch e {
    case .keyNotFound(let k, let c): return "\(path(c.codingPath + [k])): missing"
    case .typeMismatch(_, let c): return "\(path(c.codingPath)): wrong type (\(c.debugDescription))"
    case .valueNotFound(_, let c): return "\(path(c.codingPath)): missing value"
    case .dataCorrupted(let c): return "\(path(c.codingPath)): \(c.debugDescription)"
    @unknown default: return "\(e)"
    }
}

/// Content hash of a checkpoint's weight files (the GGUF file, or the directory's safetensors in
/// name order), hex. Identifies the base a trajectory must be replayed on.
public func checkpointHash(_ path: String) throws -> String {
    var isDir: ObjCBool = false
    _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
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
