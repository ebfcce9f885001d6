import Foundation
import ZOTuneBackend
import ZOTuneKernels

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// One safetensors file, memory-mapped read-only. The header is validated in full at open (bounds,
/// sizes, overlaps), so `read` only has to check the tensor's dtype and the destination.
///
/// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
/// `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`,
/// then the data section; offsets are relative to its start.
public final class SafetensorsFile: CheckpointReader, @unchecked Sendable {
    // @unchecked: the mapping is read-only and every stored property is immutable after init.

    /// One header entry, whatever its dtype.
    public struct Entry: Sendable, Equatable {
        public let name: String
        /// The dtype string as written in the file ("F32", "I64", ...).
        public let dtype: String
        public let shape: [Int]
        /// Byte range inside the data section.
        public let byteRange: Range<Int>
        /// nil when ZOTune cannot decode the dtype (only F32, F16 and BF16 are decoded).
        public let storedType: StoredType?

        public var count: Int { shape.reduce(1, *) }
    }

    public let path: String
    /// The decodable tensors (F32, F16, BF16).
    public let tensors: [String: CheckpointTensor]
    /// Every tensor of the header, including those of dtypes ZOTune cannot decode.
    public let entries: [String: Entry]
    /// `__metadata__` (string to string), empty when absent.
    public let metadata: [String: String]
    /// Size of the file in bytes.
    public let fileSize: Int

    private let base: UnsafeRawPointer
    private let dataStart: Int

    /// Largest header accepted; real headers are well under 10 MB even for thousands of tensors.
    public static let maxHeaderBytes = 100_000_000

    /// Every dtype name of the safetensors format with its width in bits (sub-byte ones included,
    /// so files holding them open and list them).
    static let dtypeBits: [String: Int] = [
        "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
        "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
        "I32": 32, "U32": 32, "F32": 32,
        "I64": 64, "U64": 64, "F64": 64, "C64": 64,
        "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    ]

    public convenience init(url: URL) throws {
        try self.init(path: url.path)
    }

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw ModelError(file: path, field: "file", "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }  // the mapping outlives the descriptor
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ModelError(file: path, field: "file", "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ModelError(file: path, field: "file", "not a regular file")
        }
        let size = Int(st.st_size)
        guard size >= 8 else {
            throw ModelError(file: path, field: "header length",
                             "file is \(size) bytes, too short for the 8-byte header length")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
              mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw ModelError(file: path, field: "file", "mmap failed: \(String(cString: strerror(errno)))")
        }
        let base = UnsafeRawPointer(mapped)
        do {
            let parsed = try Self.parseHeader(base: base, fileSize: size, path: path)
            self.entries = parsed.entries
            self.metadata = parsed.metadata
            self.dataStart = parsed.dataStart
        } catch {
            munmap(mapped, size)
            throw error
        }
        self.base = base
        self.fileSize = size
        var tensors: [String: CheckpointTensor] = [:]
        for (name, e) in entries {
            if let t = e.storedType {
                tensors[name] = CheckpointTensor(name: name, shape: e.shape, type: t, file: path)
            }
        }
        self.tensors = tensors
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), fileSize)
    }

    /// Names of tensors listed in the header whose dtype ZOTune cannot decode, with that dtype.
    public var unsupportedTensors: [String: String] {
        entries.compactMapValues { $0.storedType == nil ? $0.dtype : nil }
    }

    /// The stored bytes of tensor `name`, valid while this object lives.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let e = entries[name] else {
            throw ModelError(file: path, field: "tensor \(name)", "no such tensor in this file")
        }
        return UnsafeRawBufferPointer(start: base + dataStart + e.byteRange.lowerBound, count: e.byteRange.count)
    }

    public func read(_ name: String, into destination: UnsafeMutableRawBufferPointer, as dtype: DType) throws {
        guard let e = entries[name] else {
            throw ModelError(file: path, field: "tensor \(name)", "no such tensor in this file")
        }
        guard let stored = e.storedType else {
            throw ModelError(file: path, field: "tensor \(name): dtype",
                             "dtype \(e.dtype) is not supported (ZOTune reads F32, F16 and BF16)")
        }
        guard dtype.isFloat else {
            throw ModelError(file: path, field: "tensor \(name)", "cannot decode into \(dtype); use f32, f16 or bf16")
        }
        let count = e.count
        guard destination.count == count * dtype.size else {
            throw ModelError(file: path, field: "tensor \(name)",
                             "destination holds \(destination.count) bytes, \(count) \(dtype) elements need \(count * dtype.size)")
        }
        guard count > 0, let dst = destination.baseAddress else { return }
        let srcType: DType = stored == .f32 ? .f32 : (stored == .f16 ? .f16 : .bf16)
        Self.convert(dst: dst, dstType: dtype, src: base + dataStart + e.byteRange.lowerBound,
                     srcType: srcType, count: count)
    }

    /// Bulk conversion with zt_convert. The C kernels index typed pointers, so a misaligned side is
    /// staged through aligned scratch in chunks (safetensors does not promise aligned offsets).
    static func convert(dst: UnsafeMutableRawPointer, dstType: DType, src: UnsafeRawPointer, srcType: DType, count: Int) {
        let srcAligned = Int(bitPattern: src) % srcType.size == 0
        let dstAligned = Int(bitPattern: dst) % dstType.size == 0
        if srcAligned && dstAligned {
            zt_convert(dst, dstType.code, src, srcType.code, Int64(count))
            return
        }
        let chunk = min(count, 1 << 20)
        let srcScratch = UnsafeMutableRawPointer.allocate(byteCount: chunk * srcType.size, alignment: 64)
        let dstScratch = UnsafeMutableRawPointer.allocate(byteCount: chunk * dstType.size, alignment: 64)
        defer {
            srcScratch.deallocate()
            dstScratch.deallocate()
        }
        var done = 0
        while done < count {
            let n = min(chunk, count - done)
            let s: UnsafeRawPointer
            if srcAligned {
                s = src + done * srcType.size
            } else {
                srcScratch.copyMemory(from: src + done * srcType.size, byteCount: n * srcType.size)
                s = UnsafeRawPointer(srcScratch)
            }
            let d = dstAligned ? dst + done * dstType.size : dstScratch
            zt_convert(d, dstType.code, s, srcType.code, Int64(n))
            if !dstAligned {
                (dst + done * dstType.size).copyMemory(from: dstScratch, byteCount: n * dstType.size)
            }
            done += n
        }
    }

    // MARK: - Header

    private struct Header {
        var entries: [String: Entry]
        var metadata: [String: String]
        var dataStart: Int
    }

    private static func parseHeader(base: UnsafeRawPointer, fileSize: Int, path: String) throws -> Header {
        var n: UInt64 = 0
        withUnsafeMutableBytes(of: &n) { $0.copyMemory(from: UnsafeRawBufferPointer(start: base, count: 8)) }
        n = UInt64(littleEndian: n)
        guard n <= UInt64(fileSize - 8) else {
            throw ModelError(file: path, field: "header length",
                             "header claims \(n) bytes but only \(fileSize - 8) follow the length")
        }
        guard n <= UInt64(maxHeaderBytes) else {
            throw ModelError(file: path, field: "header length", "\(n) bytes exceeds the \(maxHeaderBytes)-byte limit")
        }
        let headerLength = Int(n)
        let bytes = Data(UnsafeRawBufferPointer(start: base + 8, count: headerLength))
        // JSONSerialization would guess other encodings; the format says UTF-8.
        guard String(data: bytes, encoding: .utf8) != nil else {
            throw ModelError(file: path, field: "header", "not valid UTF-8")
        }
        guard bytes.first == UInt8(ascii: "{") else {
            throw ModelError(file: path, field: "header", "JSON header must start with '{'")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: bytes)
        } catch {
            throw ModelError(file: path, field: "header", "malformed JSON: \(error.localizedDescription)")
        }
        guard let object = json as? [String: Any] else {
            throw ModelError(file: path, field: "header", "JSON header is not an object")
        }

        let dataStart = 8 + headerLength
        let dataSize = fileSize - dataStart
        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let dict = value as? [String: Any] else {
                    throw ModelError(file: path, field: "__metadata__", "must be an object of strings")
                }
                for (k, v) in dict {
                    guard let s = v as? String else {
                        throw ModelError(file: path, field: "__metadata__: \(k)", "value is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            entries[name] = try parseEntry(name: name, value: value, dataSize: dataSize, path: path)
        }

        // No two non-empty tensors may share bytes.
        let ordered = entries.values.filter { !$0.byteRange.isEmpty }
            .sorted { ($0.byteRange.lowerBound, $0.name) < ($1.byteRange.lowerBound, $1.name) }
        for (a, b) in zip(ordered, ordered.dropFirst()) where b.byteRange.lowerBound < a.byteRange.upperBound {
            throw ModelError(file: path, field: "tensor \(b.name): data_offsets",
                             "bytes \(b.byteRange.lowerBound)..<\(b.byteRange.upperBound) overlap tensor \(a.name) at \(a.byteRange.lowerBound)..<\(a.byteRange.upperBound)")
        }
        return Header(entries: entries, metadata: metadata, dataStart: dataStart)
    }

    private static func parseEntry(name: String, value: Any, dataSize: Int, path: String) throws -> Entry {
        let field = "tensor \(name)"
        guard let dict = value as? [String: Any] else {
            throw ModelError(file: path, field: field, "entry is not an object")
        }
        guard let dtype = dict["dtype"] as? String else {
            throw ModelError(file: path, field: "\(field): dtype", "missing or not a string")
        }
        guard let bits = dtypeBits[dtype] else {
            throw ModelError(file: path, field: "\(field): dtype",
                             "unknown dtype \"\(dtype)\" (known: \(dtypeBits.keys.sorted().joined(separator: ", ")))")
        }
        guard let shapeArray = dict["shape"] as? [Any] else {
            throw ModelError(file: path, field: "\(field): shape", "missing or not an array")
        }
        var shape: [Int] = []
        var count = 1
        for d in shapeArray {
            guard let dim = jsonInt(d), dim >= 0 else {
                throw ModelError(file: path, field: "\(field): shape", "dimensions must be non-negative integers")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow else {
                throw ModelError(file: path, field: "\(field): shape", "element count overflows")
            }
            shape.append(dim)
            count = product
        }
        guard let offsets = dict["data_offsets"] as? [Any], offsets.count == 2,
              let begin = jsonInt(offsets[0]), let end = jsonInt(offsets[1]) else {
            throw ModelError(file: path, field: "\(field): data_offsets", "must be two integers [begin, end]")
        }
        guard begin >= 0, end >= begin else {
            throw ModelError(file: path, field: "\(field): data_offsets", "[\(begin), \(end)] is not a valid range")
        }
        guard end <= dataSize else {
            throw ModelError(file: path, field: "\(field): data_offsets",
                             "[\(begin), \(end)] runs past the end of the data section (\(dataSize) bytes)")
        }
        let (totalBits, overflow) = count.multipliedReportingOverflow(by: bits)
        guard !overflow, totalBits % 8 == 0, totalBits / 8 == end - begin else {
            throw ModelError(file: path, field: "\(field): data_offsets",
                             "\(end - begin) bytes do not match shape \(shape) of \(dtype) (\(overflow ? "overflow" : "\(Double(totalBits) / 8) bytes"))")
        }
        let stored: StoredType? = switch dtype {
        case "F32": .f32
        case "F16": .f16
        case "BF16": .bf16
        default: nil
        }
        return Entry(name: name, dtype: dtype, shape: shape, byteRange: begin..<end, storedType: stored)
    }
}

extension SafetensorsFile {
    /// An integral JSON number as Int (nil for booleans, fractions and non-numbers).
    static func jsonInt(_ value: Any) -> Int? {
        guard let n = value as? NSNumber, !jsonIsBool(n) else { return nil }
        let d = n.doubleValue
        guard d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return n.intValue
    }

    /// JSONSerialization returns booleans as NSNumbers; their Objective-C type code is "c".
    static func jsonIsBool(_ n: NSNumber) -> Bool {
        String(cString: n.objCType) == "c"
    }
}
