import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels

/// θ of ALGORITHMS.md §1: the ordered, named tensors a ZO optimizer perturbs and updates. Each
/// carries its z-stream id (FNV-1a of its checkpoint name) and whether weight decay applies.
public final class TrainableSet: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let tensor: Tensor
        public let tensorId: UInt32
        /// Weight decay is skipped for biases and norm gains (every 1-D tensor).
        public let decays: Bool
    }

    public let entries: [Entry]
    /// How the set was chosen, as stored in trajectory files ("full", or "full-except:<name fragments>").
    public let spec: String

    public init(entries: [Entry], spec: String) {
        self.entries = entries
        self.spec = spec
    }

    /// Every weight of the model, each buffer once (a tied head is the embedding: perturbing it
    /// twice would apply z twice).
    public static func full(_ model: CausalLM) -> TrainableSet {
        var seen = Set<Tensor.StorageKey>()
        var entries: [Entry] = []
        for name in model.weights.names {
            let t = model.weights[name]
            guard seen.insert(t.storageKey).inserted else { continue }
            entries.append(Entry(name: name, tensor: t, tensorId: tensorId(name), decays: t.rank >= 2))
        }
        return TrainableSet(entries: entries, spec: "full")
    }

    /// Every weight but the frozen ones: tensors whose name contains one of `fragments` (kept out of
    /// the set, so no step or block ever perturbs or moves them). Spec "full-except:a,b". A fragment
    /// that matches no tensor, or one set that leaves nothing to train, is refused naming --freeze.
    public static func full(_ model: CausalLM, freezing fragments: [String]) throws -> TrainableSet {
        let all = full(model)
        guard !fragments.isEmpty else { return all }
        for f in fragments where !all.entries.contains(where: { $0.name.contains(f) }) {
            throw RunConfigError("--freeze \"\(f)\" matches no tensor of the model (its names run from \(all.entries.first!.name) to \(all.entries.last!.name))")
        }
        let kept = all.entries.filter { e in !fragments.contains { e.name.contains($0) } }
        guard !kept.isEmpty else { throw RunConfigError("--freeze \(fragments.joined(separator: ",")) freezes every tensor: nothing is left to train") }
        return TrainableSet(entries: kept, spec: "full-except:" + fragments.joined(separator: ","))
    }

    /// Rebuilds a set from its spec (trajectory replay and resume).
    public static func from(spec: String, model: CausalLM) throws -> TrainableSet {
        if spec.hasPrefix("full-except:") {
            return try full(model, freezing: spec.dropFirst("full-except:".count).split(separator: ",").map(String.init))
        }
        guard spec == "full" else {
            throw ModelError(file: "trajectory", field: "trainable", "unknown trainable-set spec \"\(spec)\" (this build knows \"full\" and \"full-except:<fragments>\")")
        }
        return full(model)
    }

    public var parameterCount: Int { entries.reduce(0) { $0 + $1.tensor.count } }

    /// A hash of every value of θ, in set order: equal on replicas that hold the same weights.
    public func contentHash(_ backend: any Backend) -> UInt64 {
        var h: UInt64 = 0x7E57_AB1E
        for e in entries {
            let values = backend.toHost(e.tensor)
            h = values.withUnsafeBytes { zt_hash64($0.baseAddress, UInt64($0.count), h) }
        }
        return h
    }

    public static func tensorId(_ name: String) -> UInt32 {
        let bytes = Array(name.utf8).map { CChar(bitPattern: $0) }
        return zt_fnv1a32(bytes, UInt64(bytes.count))
    }
}
