import Foundation
import ZOTuneBackend
import ZOTuneModels

/// The trainable tensors and optimizer state of a run whose steps cannot be replayed from the
/// trajectory (Zoop): one safetensors file, written atomically, with the completed step in its
/// metadata. Resume loads it instead of replaying.
enum WeightSnapshot {
    static func tensors(_ optimizer: any ZOOptimizer) -> [(String, Tensor)] {
        optimizer.set.entries.map { ($0.name, $0.tensor) } + optimizer.stateTensors
    }

    static func write(_ optimizer: any ZOOptimizer, step: Int, to url: URL) throws {
        guard let backend = optimizer.set.entries.first?.tensor.buffer.backend else { return }
        let data = try HFExport.safetensors(tensors(optimizer), backend: backend,
                                            metadata: ["zotune_step": String(step), "zotune_optimizer": optimizer.config.kind.rawValue])
        try AtomicFile.write(data, to: url)
    }

    /// Loads every tensor back (each must be present with its shape) and returns the saved step.
    static func load(_ optimizer: any ZOOptimizer, from url: URL) throws -> Int {
        let file = try SafetensorsFile(url: url)
        guard let step = file.metadata["zotune_step"].flatMap({ Int($0) }), step >= 0 else {
            throw ModelError(file: url.path, field: "__metadata__.zotune_step", "missing or not a step number")
        }
        for (name, t) in tensors(optimizer) {
            guard let entry = file.tensors[name] else { throw ModelError(file: url.path, field: name, "missing tensor") }
            guard entry.shape == t.shape else {
                throw ModelError(file: url.path, field: name, "shape \(entry.shape), the run's tensor is \(t.shape)")
            }
            var staging = [UInt8](repeating: 0, count: t.bytes)
            try staging.withUnsafeMutableBytes { try file.read(name, into: $0, as: t.dtype) }
            staging.withUnsafeBytes { t.buffer.backend.copy(t, fromHost: $0) }
        }
        return step
    }
}
