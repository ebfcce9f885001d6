import ZOTuneBackend

/// The named weight tensors of one model on one backend, loaded from a checkpoint and checked
/// against the shapes its architecture expects. Names are the checkpoint's (Hugging Face naming),
/// which is also what the z stream hashes into tensor ids.
public final class ModelWeights: @unchecked Sendable {
    public let tensors: [String: Tensor]
    /// Names in load order (deterministic: the architecture's order).
    public let names: [String]

    /// The name each weight has in the checkpoint (an alias of older checkpoints, or the
    /// canonical name); tied weights that the checkpoint omits have none.
    let storedNames: [String: String]

    /// Weights stored side by side in one buffer (rows of q, k, v; of gate, up), keyed by the first
    /// one's name: the (Σ rows, in) matrix one GEMM multiplies by. Each member stays its own tensor
    /// (own name, own z stream from its own element 0); only the forward's GEMM sees the group.
    public let groups: [String: Tensor]

    init(tensors: [String: Tensor], names: [String], storedNames: [String: String], groups: [String: Tensor] = [:]) {
        self.tensors = tensors
        self.names = names
        self.storedNames = storedNames
        self.groups = groups
    }

    public subscript(name: String) -> Tensor {
        guard let t = tensors[name] else { preconditionFailure("weight \(name) was not loaded") }
        return t
    }

    public func optional(_ name: String) -> Tensor? { tensors[name] }

    /// Parameters counted once (a tied head shares the embedding's buffer).
    public var parameterCount: Int {
        var seen = Set<Tensor.StorageKey>(), total = 0
        for name in names {
            let t = tensors[name]!
            if seen.insert(t.storageKey).inserted { total += t.count }
        }
        return total
    }

    public var bytes: Int {
        var seen = Set<Tensor.StorageKey>(), total = 0
        for name in names {
            let t = tensors[name]!
            if seen.insert(t.storageKey).inserted { total += t.bytes }
        }
        return total
    }

    /// One expected tensor: its name (and aliases older checkpoints use), its shape, whether the
    /// checkpoint may omit it.
    struct Spec {
        let name: String
        let shape: [Int]
        var aliases: [String] = []
    }

    /// Loads every spec'd tensor from `reader` into `backend` as `dtype` (norm gains and biases stay
    /// f32: they are tiny and the kernels read them as f32). `tiedTo` maps a name that may be
    /// missing to the tensor it shares (lm_head → embeddings). `keepBlocks`: matrices a GGUF file
    /// stores quantized stay in their block format (a frozen base for adapters).
    /// `groups`: weights (2-D, same input width, in this order) to store side by side, each group
    /// in one buffer, when they share a storage type (not GGML blocks).
    static func load(_ specs: [Spec], tied: [String: String], groups: [[String]] = [], from reader: CheckpointReader,
                     backend: any Backend, dtype: DType, keepBlocks: Bool = false) throws -> ModelWeights {
        var tensors: [String: Tensor] = [:]
        var names: [String] = []
        var stored: [String: String] = [:]
        var grouped: [String: Tensor] = [:]
        let specByName = Dictionary(specs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func entry(_ spec: Spec) throws -> CheckpointTensor {
            guard let entry = ([spec.name] + spec.aliases).lazy.compactMap({ reader.tensors[$0] }).first else {
                throw ModelError(file: reader.path, field: spec.name, "missing tensor")
            }
            guard entry.shape == spec.shape else {
                throw ModelError(file: entry.file, field: entry.name,
                                 "shape \(entry.shape) does not match the config's \(spec.shape)")
            }
            return entry
        }
        func storage(_ spec: Spec, _ entry: CheckpointTensor) -> DType {
            if keepBlocks && spec.shape.count == 2, let blocks = reader.storedBlockFormat(entry.name) { return blocks }
            return spec.shape.count == 1 ? .f32 : dtype
        }
        // Allocate each group whose members are all present, untied, 2-D of one width and one
        // storage type; its members' views are placed before the loop fills them in load order.
        for group in groups {
            let members = group.compactMap { specByName[$0] }
            guard group.count > 1, members.count == group.count,
                  members.allSatisfy({ tied[$0.name] == nil && $0.shape.count == 2 && $0.shape[1] == members[0].shape[1] }) else { continue }
            let entries = try members.map(entry)
            let types = Set(zip(members, entries).map { storage($0, $1) })
            guard types.count == 1, let type = types.first, !type.isQuantized else { continue }
            let (rows, cols) = (members.reduce(0) { $0 + $1.shape[0] }, members[0].shape[1])
            let all = try backend.allocate([rows, cols], dtype: type, tag: .weights)
            var row = 0
            for m in members {
                let at = all.offset + row * cols
                tensors[m.name] = Tensor(buffer: all.buffer, dtype: type, shape: m.shape, offset: at, streamOrigin: at)
                row += m.shape[0]
            }
            grouped[group[0]] = all
        }
        for spec in specs {
            if let source = tied[spec.name], reader.tensors[spec.name] == nil {
                guard let shared = tensors[source] else {
                    throw ModelError(file: reader.path, field: spec.name, "missing tensor (and \(source) to tie it to)")
                }
                tensors[spec.name] = shared
                names.append(spec.name)
                continue
            }
            let entry = try entry(spec)
            let t = try tensors[spec.name] ?? backend.allocate(spec.shape, dtype: storage(spec, entry), tag: .weights)
            try fill(t, from: reader, name: entry.name)
            tensors[spec.name] = t
            names.append(spec.name)
            stored[spec.name] = entry.name
        }
        return ModelWeights(tensors: tensors, names: names, storedNames: stored, groups: grouped)
    }

    /// Reads checkpoint tensor `name` into `t` in t's dtype (blocks copied as stored).
    static func fill(_ t: Tensor, from reader: CheckpointReader, name: String) throws {
        func read(_ dst: UnsafeMutableRawBufferPointer) throws {
            if t.dtype.isQuantized { try reader.readBlocks(name, into: dst) } else { try reader.read(name, into: dst, as: t.dtype) }
        }
        if t.backend.device == .cpu {
            try read(UnsafeMutableRawBufferPointer(start: t.pointer, count: t.bytes))
        } else {
            var staging = [UInt8](repeating: 0, count: t.bytes)
            try staging.withUnsafeMutableBytes { try read($0) }
            staging.withUnsafeBytes { t.backend.copy(t, fromHost: $0) }
        }
    }

    /// Whether any matrix is held in a GGML block format (a frozen quantized base).
    public var hasBlocks: Bool { tensors.values.contains { $0.dtype.isQuantized } }
}
