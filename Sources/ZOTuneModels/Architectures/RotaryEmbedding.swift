import Foundation

/// Rotary inverse frequencies as transformers computes them (f32), with rope scaling applied.
enum RotaryEmbedding {
    /// `long`: LongRoPE's long factors (a forward reaching past the original context), else its short ones.
    static func inverseFrequencies(dim: Int, theta: Float, scaling: RopeScaling?, long: Bool = false) -> [Float] {
        // 1 / theta^(2i/dim), the power taken in f32 like torch's `base ** (arange(0, dim, 2) / dim)`.
        var inv = (0..<(dim / 2)).map { i -> Float in 1 / powf(theta, Float(2 * i) / Float(dim)) }
        switch scaling {
        case nil:
            break
        case .linear(let factor):
            inv = inv.map { $0 / factor }
        case .llama3(let factor, let low, let high, let original):
            // Long wavelengths are divided by `factor`, short ones kept, the band between smoothed.
            let lowWavelen = Float(original) / low, highWavelen = Float(original) / high
            inv = inv.map { f in
                let wavelen = 2 * Float.pi / f
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return f / factor }
                let smooth = (Float(original) / wavelen - low) / (high - low)
                return (1 - smooth) * f / factor + smooth * f
            }
        case .longrope(let short, let longFactors, _, _):
            // transformers: 1 / (ext · base^(2i/dim)), the product in f32.
            let ext = long ? longFactors : short
            inv = (0..<(dim / 2)).map { i in 1 / (ext[i] * powf(theta, Float(2 * i) / Float(dim))) }
        }
        return inv
    }
}
