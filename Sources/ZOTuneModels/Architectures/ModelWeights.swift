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

    init(tensors: [String: Tensor], names: [String], storedNames: [String: String]) {
        self.tensors = tensors
        self.names = names
        self.storedNames = storedNames
    }

    public subscript(name: String) -> Tensor {
        guard let t = tensors[name] else { preconditionFailure("weight \(name) was not loaded") }
        return t
    }

    public func optional(_ name: String) -> Tensor? { tensors[name] }

    /// Parameters counted once (a tied head shares the embedding's buffer).
    public var parameterCount: Int {
        var seen = Set<ObjectIdentifier>(), total = 0
        for name in names {
            let t = tensors[name]!
            if seen.insert(ObjectIdentifier(t.buffer)).inserted { total += t.count }
        }
        return total
    }

    public var bytes: Int {
        var seen = Set<ObjectIdentifier>(), total = 0
        for name in names {
            let t = tensors[name]!
            if seen.insert(ObjectIdentifier(t.buffer)).inserted { total += t.bytes }
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
    static func load(_ specs: [Spec], tied: [String: String], from reader: CheckpointReader,
                     backend: any Backend, dtype: DType, keepBlocks: Bool = false) throws -> ModelWeights {
        var tensors: [String: Tensor] = [:]
        var names: [String] = []
        var stored: [String: String] = [:]
        for spec in specs {
            if let source = tied[spec.name], reader.tensors[spec.name] == nil {
                guard let shared = tensors[source] else {
                    throw ModelError(file: reader.path, field: spec.name, "missing tensor (and \(source) to tie it to)")
                }
                tensors[spec.name] = shared
                names.append(spec.name)
                continue
            }
            guard let entry = ([spec.name] + spec.aliases).lazy.compactMap({ reader.tensors[$0] }).first else {
                throw ModelError(file: reader.path, field: spec.name, "missing tensor")
            }
            guard entry.shape == spec.shape else {
                throw ModelError(file: entry.file, field: entry.name,
                                 "shape \(entry.shape) does not match the config's \(spec.shape)")
            }
            var storage: DType = spec.shape.count == 1 ? .f32 : dtype
            if keepBlocks && spec.shape.count == 2, let blocks = reader.storedBlockFormat(entry.name) { storage = blocks }
            let t = try backend.allocate(spec.shape, dtype: storage, tag: .weights)
            try fill(t, from: reader, name: entry.name)
            tensors[spec.name] = t
            names.append(spec.name)
            stored[spec.name] = entry.name
        }
        return ModelWeights(tensors: tensors, names: names, storedNames: stored)
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
