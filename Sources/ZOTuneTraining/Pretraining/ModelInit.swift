import Foundation
import ZOTuneBackend
import ZOTuneKernels

/// Seeded random initial weights, as transformers initialises a Llama (`_init_weights`): every
/// matrix (embeddings, projections, head) N(0, std²), norm gains 1, biases 0. The normals are the
/// z stream's (zt_philox.h, stream ZT_STREAM_INIT, keyed by the tensor's name), so the same seed
/// gives the same model on the CPU and on CUDA. transformers also zeroes the padding row of the
/// embedding; here it is drawn like the others (padded positions are masked out).
public struct InitOptions: Sendable, Equatable, Codable {
    public var seed: UInt64
    /// Standard deviation of the matrices (transformers' `initializer_range`).
    public var std: Float

    public init(seed: UInt64 = 0, std: Float = 0.02) {
        self.seed = seed
        self.std = std
    }

    enum CodingKeys: String, CodingKey { case seed, std }

    // The seed is 64-bit: a decimal string, as in RunOptions.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        guard let s = UInt64(try c.decode(String.self, forKey: .seed)) else {
            throw DecodingError.dataCorruptedError(forKey: .seed, in: c, debugDescription: "not an unsigned 64-bit integer")
        }
        seed = s
        std = try c.decode(Float.self, forKey: .std)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(String(seed), forKey: .seed)
        try c.encode(std, forKey: .std)
    }
}

public enum ModelInit {
    /// The seed of pass p over the blocks: the init seed itself for pass 0 (so a block
    /// re-initialised in the first pass gets exactly its initial values), a fresh one after.
    public static func seed(_ options: InitOptions, pass: Int) -> UInt64 {
        pass == 0 ? options.seed : stepSeed(runSeed: options.seed ^ 0x1A17_0000_0000_0000, step: pass, direction: 0)
    }

    /// Fills `t` (f32) with the initial values of weight `name`.
    public static func fill(_ t: Tensor, name: String, options: InitOptions, pass: Int = 0, backend: any Backend) {
        precondition(t.dtype == .f32, "random initialisation writes f32 weights")
        if t.rank >= 2 {
            backend.fillNormal(t, seed: seed(options, pass: pass), tensorId: TrainableSet.tensorId(name), stream: ZT_STREAM_INIT,
                               scale: options.std)
        } else {
            let value: Float = name.hasSuffix(".bias") ? 0 : 1
            [Float](repeating: value, count: t.count).withUnsafeBytes { backend.copy(t, fromHost: $0) }
        }
    }
}
