// GGUF (llama.cpp) checkpoints: header, metadata, tensor infos, Hugging Face names and layouts.
// The file is memory-mapped read-only and every count, length and offset is checked against its
// size before use, so a damaged file gives a ModelError naming the field instead of a crash.
import ZOTuneBackend
import ZOTuneKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One GGUF metadata value.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array([GGUFValue])

    /// Any integer type whose value fits an Int.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// A float or an integer, as a Double.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var arrayValue: [GGUFValue]? { if case .array(let a) = self { return a } else { return nil } }

    /// GGUF's name of the value type, for messages.
    public var typeName: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float32: return "float32"
        case .float64: return "float64"
        case .bool: return "bool"
        case .string: return "string"
        case .array(let a): return "array[\(a.first?.typeName ?? "")]"
        }
    }
}

/// A tensor as the GGUF file describes it, with its Hugging Face name and shape.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The name in the file (`blk.0.attn_q.weight`).
    public let ggufName: String
    /// The Hugging Face name (`model.layers.0.self_attn.q_proj.weight`), or the GGUF name if unknown.
    public let name: String
    /// GGML's ne[]: innermost (contiguous) dimension first.
    public let dims: [Int]
    /// Row-major Hugging Face shape, outermost first (reversed dims; transposed for GPT-2 Conv1D).
    public let shape: [Int]
    /// GGML type id (ZT_GGML_*).
    public let ggmlType: Int
    public let type: StoredType
    /// Absolute byte offset of the data in the file, and its length.
    public let offset: Int
    public let byteCount: Int

    public var count: Int { dims.reduce(1, *) }
}

/// Tokenizer data from `tokenizer.ggml.*` metadata, as stored (ids are indices into `tokens`).
public struct GGUFTokenizerData: Sendable, Equatable {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece), as written.
    public var model: String
    /// `tokenizer.ggml.pre`: the pre-tokenizer name (e.g. "smollm", "llama-bpe").
    public var pre: String?
    public var tokens: [String]
    /// "a b" pairs in rank order (BPE only).
    public var merges: [String]
    /// One per token when present (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    public var tokenTypes: [Int32]
    /// One per token when present (SentencePiece).
    public var scores: [Float]
    public var bosId: Int?
    public var eosId: Int?
    public var padId: Int?
    public var unknownId: Int?
    public var addBos: Bool?
    public var addEos: Bool?
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece's dummy prefix; false for Gemma).
    public var addSpacePrefix: Bool?
    public var chatTemplate: String?

    public init(model: String, pre: String? = nil, tokens: [String], merges: [String] = [], tokenTypes: [Int32] = [],
                scores: [Float] = [], bosId: Int? = nil, eosId: Int? = nil, padId: Int? = nil, unknownId: Int? = nil,
                addBos: Bool? = nil, addEos: Bool? = nil, addSpacePrefix: Bool? = nil, chatTemplate: String? = nil) {
        self.model = model
        self.pre = pre
        self.tokens = tokens
        self.merges = merges
        self.tokenTypes = tokenTypes
        self.scores = scores
        self.bosId = bosId
        self.eosId = eosId
        self.padId = padId
        self.unknownId = unknownId
        self.addBos = addBos
        self.addEos = addEos
        self.addSpacePrefix = addSpacePrefix
        self.chatTemplate = chatTemplate
    }
}

/// A GGUF v2/v3 checkpoint. Immutable after init; the mapping lives as long as the object.
public final class GGUFFile: CheckpointReader, @unchecked Sendable {
    public let path: String
    public let version: Int
    /// `general.alignment` (default 32): tensor data offsets are multiples of it.
    public let alignment: Int
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// `general.architecture`, if present.
    public let architecture: String?
    /// Tensors in file order.
    public let tensorInfos: [GGUFTensorInfo]
    public let tensors: [String: CheckpointTensor]

    private let infoIndex: [String: Int]     // HF name → tensorInfos index
    private let ggufIndex: [String: Int]     // GGUF name → tensorInfos index
    private let base: UnsafeRawPointer
    private let fileSize: Int

    public init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ModelError(file: path, field: "file", "cannot open: \(errnoText())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ModelError(file: path, field: "file", "cannot stat: \(errnoText())") }
        let size = Int(st.st_size)
        guard size > 0 else { throw ModelError(file: path, field: "magic", "file is empty") }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw ModelError(file: path, field: "file", "cannot mmap: \(errnoText())")
        }
        let parsed: Parsed
        do {
            var parser = Parser(file: path, base: UnsafeRawPointer(mapped), size: size)
            parsed = try parser.parse()
        } catch {
            munmap(mapped, size)
            throw error
        }
        self.path = path
        self.base = UnsafeRawPointer(mapped)
        self.fileSize = size
        self.version = parsed.version
        self.alignment = parsed.alignment
        self.metadata = parsed.metadata
        self.metadataKeys = parsed.keys
        self.architecture = parsed.metadata["general.architecture"]?.stringValue
        self.tensorInfos = parsed.infos
        var infoIndex: [String: Int] = [:], ggufIndex: [String: Int] = [:], tensors: [String: CheckpointTensor] = [:]
        for (i, info) in parsed.infos.enumerated() {
            infoIndex[info.name] = i
            ggufIndex[info.ggufName] = i
            tensors[info.name] = CheckpointTensor(name: info.name, shape: info.shape, type: info.type, file: path)
        }
        self.infoIndex = infoIndex
        self.ggufIndex = ggufIndex
        self.tensors = tensors
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), fileSize) }

    // MARK: Tensors

    /// The tensor stored under a Hugging Face name.
    public func tensorInfo(_ name: String) -> GGUFTensorInfo? { infoIndex[name].map { tensorInfos[$0] } }

    /// The tensor stored under a GGUF name.
    public func tensorInfo(ggufName: String) -> GGUFTensorInfo? { ggufIndex[ggufName].map { tensorInfos[$0] } }

    /// The raw (still quantized) bytes of a tensor, valid only inside `body`.
    public func withRawData<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let info = tensorInfo(name) else { throw ModelError(file: path, field: name, "no such tensor in this GGUF file") }
        return try body(UnsafeRawBufferPointer(start: base + info.offset, count: info.byteCount))
    }

    public func read(_ name: String, into destination: UnsafeMutableRawBufferPointer, as dtype: DType) throws {
        guard let info = tensorInfo(name) else { throw ModelError(file: path, field: name, "no such tensor in this GGUF file") }
        guard dtype.isFloat else { throw ModelError(file: path, field: name, "cannot decode into \(dtype)") }
        let count = info.count
        guard destination.count == count * dtype.size else {
            throw ModelError(file: path, field: name,
                             "destination holds \(destination.count) bytes, \(count) \(dtype) elements need \(count * dtype.size)")
        }
        guard count > 0, let dst = destination.baseAddress else { return }
        let src = base + info.offset
        let type = Int32(info.ggmlType)
        let cols = info.dims.first ?? 1, rows = count / cols  // dims: ne, innermost first

        switch try layoutFix(info) {
        case .none:
            try check(zt_dequantize_rows(dst, dtype.code, src, type, Int64(rows), Int64(cols), nil), info)
        case .rows(let mapOf) where info.dims.count > 1:
            // Gather source rows while dequantizing: out row r = GGUF row map[r].
            let map = try mapOf(rows)
            try map.withUnsafeBufferPointer {
                try check(zt_dequantize_rows(dst, dtype.code, src, type, Int64(rows), Int64(cols), $0.baseAddress), info)
            }
        case .rows(let mapOf):
            // A bias (one "column" per row): gather in f32, then convert.
            let map = try mapOf(count)
            var flat = [Float](repeating: 0, count: count)
            try flat.withUnsafeMutableBufferPointer {
                try check(zt_dequantize($0.baseAddress, src, type, Int64(count)), info)
            }
            let gathered = map.map { flat[Int($0)] }
            gathered.withUnsafeBufferPointer { zt_convert(dst, dtype.code, $0.baseAddress, zt_dtype(ZT_F32), Int64(count)) }
        case .minusOne:
            // Gemma's gains: 1 + w as llama.cpp stores them; a − 1 is exact for a ∈ [0.5, 2] (Sterbenz).
            var flat = [Float](repeating: 0, count: count)
            try flat.withUnsafeMutableBufferPointer {
                try check(zt_dequantize($0.baseAddress, src, type, Int64(count)), info)
            }
            let w = flat.map { $0 - 1 }
            w.withUnsafeBufferPointer { zt_convert(dst, dtype.code, $0.baseAddress, zt_dtype(ZT_F32), Int64(count)) }
        case .transpose:
            var flat = [Float](repeating: 0, count: count)
            try flat.withUnsafeMutableBufferPointer {
                try check(zt_dequantize($0.baseAddress, src, type, Int64(count)), info)
                zt_transpose_to(dst, dtype.code, $0.baseAddress, Int64(rows), Int64(cols))
            }
        }
    }

    public func storedBlockFormat(_ name: String) -> DType? {
        guard let info = tensorInfo(name), info.dims.count == 2, let d = DType(ggmlType: info.ggmlType),
              (info.dims.first ?? 0) % d.blockElements == 0 else { return nil }
        switch try? layoutFix(info) {
        case .none?, .rows?: return d
        default: return nil     // GPT-2's transposed Conv1D weights are dequantized at load
        }
    }

    public func readBlocks(_ name: String, into destination: UnsafeMutableRawBufferPointer) throws {
        guard let info = tensorInfo(name), let d = storedBlockFormat(name), let dst = destination.baseAddress else {
            throw ModelError(file: path, field: name, "not a quantized matrix this build keeps as blocks")
        }
        guard destination.count == info.byteCount else {
            throw ModelError(file: path, field: name, "destination holds \(destination.count) bytes, the blocks are \(info.byteCount)")
        }
        let src = base + info.offset
        let cols = info.dims[0], rows = info.count / cols, rowBytes = d.byteCount(cols)
        switch try layoutFix(info) {
        case .rows(let mapOf):
            // llama.cpp permuted whole rows (Llama's q and k, GPT-NeoX's q/k/v): move whole rows of blocks back.
            let map = try mapOf(rows)
            for r in 0..<rows { (dst + r * rowBytes).copyMemory(from: src + Int(map[r]) * rowBytes, byteCount: rowBytes) }
        default:
            dst.copyMemory(from: src, byteCount: info.byteCount)
        }
    }

    /// `rows`: HF row r is GGUF row map[r] (the map built for a row count).
    private enum LayoutFix { case none, rows((Int) throws -> [Int64]), transpose, minusOne }

    /// What turns the GGUF layout into the Hugging Face one, as the family says
    /// (`ArchitectureFamily.ggufLayout`): llama.cpp's convert script permutes the rows of Llama's
    /// q and k projections (HF's rotate-half RoPE → GGML's interleaved pairs), and transposes
    /// GPT-2's Conv1D weights to (out, in).
    private func layoutFix(_ info: GGUFTensorInfo) throws -> LayoutFix {
        // Top-level tensors too: Gemma's output_norm is stored as 1 + w like the layers' norms.
        guard let architecture, let arch = Architecture(gguf: architecture), let r = Self.role(ofGGUF: info.ggufName, family: arch.family)
        else { return .none }
        switch arch.family.ggufLayout(r.role, part: r.part) {
        case .asIs:
            return .none
        case .unpermuteQ, .unpermuteK:
            let heads = try headCount(for: info)
            let n = r.role == .q ? heads : try uniformInt("\(architecture).attention.head_count_kv") ?? heads
            return .rows { try self.unpermuteMap(rows: $0, heads: n, info) }
        case .interleaveQKV:
            let heads = try headCount(for: info)
            return .rows { rows in
                // GGUF row p·H·D + h·D + i (all q, all k, all v) → HF row h·3D + p·D + i (per head).
                guard rows % (3 * heads) == 0 else {
                    throw ModelError(file: self.path, field: info.ggufName, "\(rows) rows are not q, k, v of \(heads) heads")
                }
                let d = rows / (3 * heads)
                return (0..<rows).map { r in
                    let (h, p, i) = (r / (3 * d), (r % (3 * d)) / d, r % d)
                    return Int64(p * heads * d + h * d + i)
                }
            }
        case .transpose:
            return info.dims.count == 2 ? .transpose : .none
        case .minusOne:
            return .minusOne
        }
    }

    private func headCount(for info: GGUFTensorInfo) throws -> Int {
        let key = "\(architecture ?? "").attention.head_count"
        guard let heads = try uniformInt(key), heads > 0 else {
            throw ModelError(file: path, field: key, "missing; needed to undo the row layout of \(info.ggufName)")
        }
        return heads
    }

    /// Inverse of llama.cpp's permute: within each head of 2·half rows, HF row j·half + i is GGUF
    /// row 2i + j (transformers' reverse_permute: reshape(heads, half, 2) → swap → reshape).
    private func unpermuteMap(rows: Int, heads: Int, _ info: GGUFTensorInfo) throws -> [Int64] {
        guard heads > 0, rows % (2 * heads) == 0 else {
            throw ModelError(file: path, field: info.ggufName,
                             "\(rows) rows cannot be split into \(heads) heads of rotary pairs to undo llama.cpp's permutation")
        }
        let half = rows / heads / 2
        var map = [Int64](repeating: 0, count: rows)
        for r in 0..<rows {
            let h = r / (2 * half), j = (r % (2 * half)) / half, i = r % half
            map[r] = Int64(h * 2 * half + 2 * i + j)
        }
        return map
    }

    private func check(_ rc: Int32, _ info: GGUFTensorInfo) throws {
        guard rc == 0 else { throw ModelError(file: path, field: info.ggufName, "dequantization of \(info.type.rawValue) failed") }
    }

    // MARK: Metadata getters (nil when absent; a ModelError naming the key when the type is wrong)

    public func string(_ key: String) throws -> String? {
        guard let v = metadata[key] else { return nil }
        guard let s = v.stringValue else { throw typeError(key, v, "a string") }
        return s
    }

    public func int(_ key: String) throws -> Int? {
        guard let v = metadata[key] else { return nil }
        guard let i = v.intValue else {
            if case .uint64(let u) = v { throw ModelError(file: path, field: key, "value \(u) does not fit an Int") }
            throw typeError(key, v, "an integer")
        }
        return i
    }

    public func double(_ key: String) throws -> Double? {
        guard let v = metadata[key] else { return nil }
        guard let d = v.doubleValue else { throw typeError(key, v, "a number") }
        return d
    }

    public func float(_ key: String) throws -> Float? { try double(key).map(Float.init) }

    public func bool(_ key: String) throws -> Bool? {
        guard let v = metadata[key] else { return nil }
        guard let b = v.boolValue else { throw typeError(key, v, "a bool") }
        return b
    }

    public func strings(_ key: String) throws -> [String]? {
        guard let v = metadata[key] else { return nil }
        guard let a = v.arrayValue else { throw typeError(key, v, "an array of strings") }
        return try a.map { guard let s = $0.stringValue else { throw typeError(key, v, "an array of strings") }; return s }
    }

    public func ints(_ key: String) throws -> [Int]? {
        guard let v = metadata[key] else { return nil }
        guard let a = v.arrayValue else { throw typeError(key, v, "an array of integers") }
        return try a.map { guard let i = $0.intValue else { throw typeError(key, v, "an array of integers") }; return i }
    }

    public func floats(_ key: String) throws -> [Float]? {
        guard let v = metadata[key] else { return nil }
        guard let a = v.arrayValue else { throw typeError(key, v, "an array of numbers") }
        return try a.map { guard let d = $0.doubleValue else { throw typeError(key, v, "an array of numbers") }; return Float(d) }
    }

    private func typeError(_ key: String, _ v: GGUFValue, _ expected: String) -> ModelError {
        ModelError(file: path, field: key, "expected \(expected), found \(v.typeName)")
    }

    /// An integer, or a per-layer array of integers that are all equal (some converters write head
    /// counts per layer).
    func uniformInt(_ key: String) throws -> Int? {
        if let v = metadata[key], v.arrayValue != nil {
            let all = try ints(key) ?? []
            guard let first = all.first, all.allSatisfy({ $0 == first }) else {
                throw ModelError(file: path, field: key, "per-layer values differ; only uniform models are supported")
            }
            return first
        }
        return try int(key)
    }

    func requiredPositive(_ key: String) throws -> Int {
        guard let v = try uniformInt(key) else { throw ModelError(file: path, field: key, "missing") }
        guard v > 0 else { throw ModelError(file: path, field: key, "must be positive, found \(v)") }
        return v
    }

    func requiredFloat(_ key: String) throws -> Float {
        guard let v = try float(key) else { throw ModelError(file: path, field: key, "missing") }
        return v
    }

    // MARK: Config and tokenizer

    /// The model configuration from `general.architecture` and `<arch>.*` metadata, read by the
    /// family that writes that architecture (Architectures/).
    public func modelConfig() throws -> ModelConfig {
        let archKey = "general.architecture"
        guard let arch = try string(archKey) else { throw ModelError(file: path, field: archKey, "missing") }
        guard let family = Architecture(gguf: arch)?.family else {
            let known = Architecture.allCases.compactMap { $0.family.ggufArchitecture }.joined(separator: ", ")
            throw ModelError(file: path, field: archKey, "unsupported architecture \"\(arch)\" (supported: \(known))")
        }
        return try family.config(gguf: self)
    }

    /// The embedding's rows when present (what the forward indexes), else `<arch>.vocab_size`, else
    /// the token list.
    func vocabSize(_ arch: String) throws -> Int {
        if let embd = tensorInfo(ggufName: "token_embd.weight"), embd.dims.count == 2 { return embd.dims[1] }
        if let v = try int(arch + ".vocab_size") { return v }
        if let tokens = metadata["tokenizer.ggml.tokens"]?.arrayValue { return tokens.count }
        throw ModelError(file: path, field: "tokenizer.ggml.tokens", "missing, and no token_embd.weight tensor gives the vocabulary size")
    }

    /// `<arch>.rope.scaling.*`: none or linear (other types are refused naming the key).
    func linearRopeScaling(_ p: String) throws -> RopeScaling? {
        let typeKey = p + "rope.scaling.type"
        switch try string(typeKey) {
        case nil:
            // Older converters wrote only a linear factor.
            if let f = try float(p + "rope.scale_linear"), f != 1 { return .linear(factor: f) }
            return nil
        case "none":
            return nil
        case "linear":
            guard let f = try float(p + "rope.scaling.factor") else {
                throw ModelError(file: path, field: p + "rope.scaling.factor", "missing for linear rope scaling")
            }
            return .linear(factor: f)
        case let other?:
            throw ModelError(file: path, field: typeKey, "rope scaling \"\(other)\" is not supported")
        }
    }

    func tokenId(_ key: String) throws -> Int? {
        guard let id = try int(key) else { return nil }
        if let n = metadata["tokenizer.ggml.tokens"]?.arrayValue?.count, !(0..<n).contains(id) {
            throw ModelError(file: path, field: key, "token id \(id) is outside the \(n)-token vocabulary")
        }
        return id
    }

    /// The `tokenizer.ggml.*` data, unprocessed.
    public func tokenizerData() throws -> GGUFTokenizerData {
        let p = "tokenizer.ggml."
        guard let model = try string(p + "model") else { throw ModelError(file: path, field: p + "model", "missing") }
        guard let tokens = try strings(p + "tokens") else { throw ModelError(file: path, field: p + "tokens", "missing") }
        let types = try ints(p + "token_type") ?? []
        let scores = try floats(p + "scores") ?? []
        guard types.isEmpty || types.count == tokens.count else {
            throw ModelError(file: path, field: p + "token_type", "\(types.count) entries for \(tokens.count) tokens")
        }
        guard scores.isEmpty || scores.count == tokens.count else {
            throw ModelError(file: path, field: p + "scores", "\(scores.count) entries for \(tokens.count) tokens")
        }
        let tokenTypes = try types.map { v -> Int32 in
            guard let t = Int32(exactly: v) else { throw ModelError(file: path, field: p + "token_type", "value \(v) outside int32") }
            return t
        }
        return GGUFTokenizerData(
            model: model, pre: try string(p + "pre"), tokens: tokens, merges: try strings(p + "merges") ?? [],
            tokenTypes: tokenTypes, scores: scores,
            bosId: try tokenId(p + "bos_token_id"), eosId: try tokenId(p + "eos_token_id"),
            padId: try tokenId(p + "padding_token_id"), unknownId: try tokenId(p + "unknown_token_id"),
            addBos: try bool(p + "add_bos_token"), addEos: try bool(p + "add_eos_token"),
            addSpacePrefix: try bool(p + "add_space_prefix"),
            chatTemplate: try string("tokenizer.chat_template"))
    }

    // MARK: Names

    /// `blk.N.part.rest` → (N, part, rest).
    static func splitBlockName(_ name: String) -> (Int, String, String)? {
        let c = name.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false)
        guard c.count == 4, c[0] == "blk", let layer = Int(c[1]) else { return nil }
        return (layer, String(c[2]), String(c[3]))
    }

    /// (layer, role, part) of a GGUF tensor name: `blk.N.<role>.weight|bias` inside a layer,
    /// `<role>.weight|bias` outside, in llama.cpp's role names (`Role.ggufName`).
    static func role(ofGGUF name: String, family: (any ArchitectureFamily.Type)?) -> TensorRole? {
        let layer: Int?, part: String, rest: String
        if let (l, p, r) = splitBlockName(name) {
            (layer, part, rest) = (l, p, r)
        } else {
            let c = name.split(separator: ".", omittingEmptySubsequences: false)
            guard c.count == 2 else { return nil }
            (layer, part, rest) = (nil, String(c[0]), String(c[1]))
        }
        // Two roles share llama.cpp's ffn_up: up, and Phi-3's fused gate_up; the family says which.
        let candidates = Role.allCases.filter { $0.ggufName == part }
        guard let p = TensorPart(rawValue: rest),
              let role = candidates.first(where: { family?.names.has($0, perLayer: layer != nil) ?? false }) ?? candidates.first
        else { return nil }
        return TensorRole(layer: layer, role: role, part: p)
    }

    /// The Hugging Face name of a GGUF tensor for `architecture` (a family's `ggufArchitecture`):
    /// its role under the family's checkpoint name; unknown names and architectures keep the GGUF name.
    public static func huggingFaceName(_ ggufName: String, architecture: String?) -> String {
        guard let architecture, let arch = Architecture(gguf: architecture), let r = role(ofGGUF: ggufName, family: arch.family),
              arch.family.names.has(r.role, perLayer: r.layer != nil) else { return ggufName }
        return arch.family.names.name(r.role, layer: r.layer, r.part)
    }
}

private func errnoText() -> String { String(cString: strerror(errno)) }

// MARK: - Parsing

private struct Parsed {
    var version = 0
    var alignment = 32
    var metadata: [String: GGUFValue] = [:]
    var keys: [String] = []
    var infos: [GGUFTensorInfo] = []
}

/// GGML type ids → the stored types ZOTune decodes.
private let supportedTypes: [Int: StoredType] = [
    0: .f32, 1: .f16, 30: .bf16, 2: .q4_0, 3: .q4_1, 6: .q5_0, 7: .q5_1, 8: .q8_0, 12: .q4_K, 13: .q5_K, 14: .q6_K,
]

/// Names of GGML types for messages about the ones ZOTune cannot decode.
private let ggmlTypeNames: [Int: String] = [
    9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
    20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
    29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
]

private struct Parser {
    let file: String
    let base: UnsafeRawPointer
    let size: Int
    var pos = 0

    init(file: String, base: UnsafeRawPointer, size: Int) {
        self.file = file
        self.base = base
        self.size = size
    }

    func fail(_ field: String, _ message: String) -> ModelError { ModelError(file: file, field: field, message) }

    /// Claims n bytes at the cursor; `field` is built only on failure.
    mutating func take(_ n: Int, _ field: @autoclosure () -> String) throws -> UnsafeRawPointer {
        guard n >= 0, n <= size - pos else {
            throw fail(field(), "truncated: needs \(n) bytes at offset \(pos), past the end of the file (\(size) bytes)")
        }
        defer { pos += n }
        return base + pos
    }

    mutating func u8(_ field: @autoclosure () -> String) throws -> UInt8 {
        try take(1, field()).load(as: UInt8.self)
    }

    mutating func u16(_ field: @autoclosure () -> String) throws -> UInt16 {
        UInt16(littleEndian: try take(2, field()).loadUnaligned(as: UInt16.self))
    }

    mutating func u32(_ field: @autoclosure () -> String) throws -> UInt32 {
        UInt32(littleEndian: try take(4, field()).loadUnaligned(as: UInt32.self))
    }

    mutating func u64(_ field: @autoclosure () -> String) throws -> UInt64 {
        UInt64(littleEndian: try take(8, field()).loadUnaligned(as: UInt64.self))
    }

    /// A u64 count or length that must fit an Int.
    mutating func length(_ field: @autoclosure () -> String) throws -> Int {
        let v = try u64(field())
        guard let n = Int(exactly: v) else { throw fail(field(), "length \(v) is beyond any file") }
        return n
    }

    mutating func string(_ field: @autoclosure () -> String) throws -> String {
        let n = try length(field())
        guard n <= size - pos else {
            throw fail(field(), "truncated: string of \(n) bytes at offset \(pos - 8) runs past the end of the file (\(size) bytes)")
        }
        let p = try take(n, field())
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// Smallest encoding of a value of `type` (nil: unknown type): bounds array counts before any
    /// allocation.
    static func minSize(_ type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 10, 11, 12: return 8
        case 8: return 8        // length prefix
        case 9: return 12       // element type + count
        default: return nil
        }
    }

    mutating func value(_ type: UInt32, _ field: String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try u8(field))
        case 1: return .int8(Int8(bitPattern: try u8(field)))
        case 2: return .uint16(try u16(field))
        case 3: return .int16(Int16(bitPattern: try u16(field)))
        case 4: return .uint32(try u32(field))
        case 5: return .int32(Int32(bitPattern: try u32(field)))
        case 6: return .float32(Float(bitPattern: try u32(field)))
        case 7: return .bool(try u8(field) != 0)
        case 8: return .string(try string(field))
        case 10: return .uint64(try u64(field))
        case 11: return .int64(Int64(bitPattern: try u64(field)))
        case 12: return .float64(Double(bitPattern: try u64(field)))
        case 9:
            guard depth < 8 else { throw fail(field, "arrays nested deeper than 8 levels") }
            let elemType = try u32(field)
            guard let minSize = Self.minSize(elemType) else {
                throw fail(field, "unknown metadata value type \(elemType) for array elements")
            }
            let count = try length(field)
            guard count <= (size - pos) / minSize else {
                throw fail(field, "array of \(count) elements cannot fit in the \(size - pos) bytes left in the file")
            }
            var a: [GGUFValue] = []
            a.reserveCapacity(count)
            for _ in 0..<count { a.append(try value(elemType, field, depth: depth + 1)) }
            return .array(a)
        default:
            throw fail(field, "unknown metadata value type \(type)")
        }
    }

    mutating func parse() throws -> Parsed {
        var out = Parsed()
        let magic = try take(4, "magic")
        guard magic.loadUnaligned(as: UInt32.self) == UInt32(littleEndian: 0x4655_4747) else {
            let bytes = (0..<4).map { String(magic.load(fromByteOffset: $0, as: UInt8.self), radix: 16) }
            throw fail("magic", "not a GGUF file (expected \"GGUF\", found bytes 0x\(bytes.joined(separator: " 0x")))")
        }
        let version = try u32("version")
        switch version {
        case 2, 3: out.version = Int(version)
        case 1: throw fail("version", "GGUF v1 (32-bit counts) is not supported; convert the file with a newer llama.cpp")
        default:
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw fail("version", "big-endian GGUF files are not supported")
            }
            throw fail("version", "unsupported GGUF version \(version) (supported: 2, 3)")
        }
        let tensorCount = try length("tensor_count")
        let kvCount = try length("metadata_kv_count")
        // Each kv takes at least 13 bytes (key length, type, 1-byte value), each tensor info 24.
        guard kvCount <= (size - pos) / 13 else {
            throw fail("metadata_kv_count", "\(kvCount) key-value pairs cannot fit in the \(size - pos) bytes left in the file")
        }
        guard tensorCount <= (size - pos) / 24 else {
            throw fail("tensor_count", "\(tensorCount) tensor infos cannot fit in the \(size - pos) bytes left in the file")
        }

        out.keys.reserveCapacity(kvCount)
        for i in 0..<kvCount {
            let key = try string("metadata[\(i)].key")
            let type = try u32(key)
            let v = try value(type, key)
            guard out.metadata.updateValue(v, forKey: key) == nil else { throw fail(key, "duplicate metadata key") }
            out.keys.append(key)
        }

        if let a = out.metadata["general.alignment"] {
            guard let n = a.intValue, n > 0, n & (n - 1) == 0 else {
                throw fail("general.alignment", "must be a positive power of two, found \(a)")
            }
            out.alignment = n
        }
        let arch = out.metadata["general.architecture"]?.stringValue

        // Tensor infos: (name, [ne], type, relative offset).
        var raw: [(name: String, dims: [Int], type: Int, stored: StoredType, offset: Int, bytes: Int)] = []
        raw.reserveCapacity(tensorCount)
        var seen = Set<String>()
        for i in 0..<tensorCount {
            let name = try string("tensor_infos[\(i)].name")
            guard seen.insert(name).inserted else { throw fail(name, "duplicate tensor name") }
            let nDims = try u32(name)
            guard nDims <= 4 else { throw fail(name, "n_dims \(nDims) exceeds GGML's maximum of 4") }
            var dims: [Int] = []
            var count = 1
            for d in 0..<Int(nDims) {
                let ne = try u64(name)
                guard let n = Int(exactly: ne) else {
                    throw fail(name, "ne[\(d)] = \(ne) is not a valid dimension")
                }
                let (c, overflow) = count.multipliedReportingOverflow(by: n)
                guard !overflow else { throw fail(name, "element count overflows") }
                count = c
                dims.append(n)
            }
            let typeId = Int(try u32(name))
            guard let stored = supportedTypes[typeId] else {
                let known = ggmlTypeNames[typeId].map { " (\($0))" } ?? ""
                throw fail(name, "unsupported tensor type \(typeId)\(known); supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K")
            }
            let blockElems = Int(zt_quant_block_elems(Int32(typeId)))
            let blockBytes = Int(zt_quant_block_bytes(Int32(typeId)))
            let inner = dims.first ?? 1
            guard inner % blockElems == 0 else {
                throw fail(name, "size mismatch: row length ne[0] = \(inner) is not a multiple of the \(stored.rawValue) block of \(blockElems)")
            }
            let (bytes, overflow) = (count / blockElems).multipliedReportingOverflow(by: blockBytes)
            guard !overflow else { throw fail(name, "byte size overflows") }
            let offset = try length(name)
            guard offset % out.alignment == 0 else {
                throw fail(name, "data offset \(offset) is not a multiple of the alignment \(out.alignment)")
            }
            raw.append((name, dims, typeId, stored, offset, bytes))
        }

        // Data section: the first aligned offset after the tensor infos.
        let dataStart = (pos + out.alignment - 1) / out.alignment * out.alignment
        var hfNames = Set<String>()
        for t in raw {
            let (start, o1) = dataStart.addingReportingOverflow(t.offset)
            let (end, o2) = start.addingReportingOverflow(t.bytes)
            guard !o1, !o2, end <= size else {
                throw fail(t.name, "data at offset \(t.offset) of the data section (which starts at \(dataStart)), "
                           + "\(t.bytes) bytes long, lies outside the file of \(size) bytes (truncated?)")
            }
            let hf = GGUFFile.huggingFaceName(t.name, architecture: arch)
            guard hfNames.insert(hf).inserted else { throw fail(t.name, "maps to \(hf), which another tensor already has") }
            var shape = Array(t.dims.reversed())
            if t.dims.count == 2, let arch, let family = Architecture(gguf: arch)?.family, let r = GGUFFile.role(ofGGUF: t.name, family: family),
               r.layer != nil, family.ggufLayout(r.role, part: r.part) == .transpose {
                shape = t.dims  // stored (in, out) in the Hugging Face checkpoint (GPT-2's Conv1D)
            }
            out.infos.append(GGUFTensorInfo(ggufName: t.name, name: hf, dims: t.dims, shape: shape, ggmlType: t.type,
                                            type: t.stored, offset: start, byteCount: t.bytes))
        }

        // No two tensors may share bytes.
        let byOffset = out.infos.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw fail(b.ggufName, "data [\(b.offset), \(b.offset + b.byteCount)) overlaps tensor \(a.ggufName) "
                       + "[\(a.offset), \(a.offset + a.byteCount))")
        }
        return out
    }
}
