import Foundation

/// Learning-rate schedules (with linear warm-up from 0).
public enum LRSchedule: String, Sendable, CaseIterable, Codable {
    case constant, linear, cosine
}

public struct StepSchedule: Sendable, Equatable, Codable {
    public var lr: Float
    public var kind: LRSchedule
    public var warmupSteps: Int
    public var totalSteps: Int

    enum CodingKeys: String, CodingKey { case lr, kind, warmupSteps = "warmup_steps", totalSteps = "total_steps" }

    public init(lr: Float, kind: LRSchedule = .constant, warmupSteps: Int = 0, totalSteps: Int) {
        self.lr = lr
        self.kind = kind
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// η_t for step t (0-based).
    public func lr(at t: Int) -> Float {
        if t < warmupSteps { return lr * Float(t + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Double(t - warmupSteps) / Double(span))
        switch kind {
        case .constant: return lr
        case .linear: return lr * Float(1 - progress)
        case .cosine: return lr * Float(0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}

/// The seed of step t, direction k, derived from the run seed alone (SplitMix64 finaliser of a
/// unique counter), so any step's z can be regenerated without the ones before it.
public func stepSeed(runSeed: UInt64, step: Int, direction: Int) -> UInt64 {
    var z = runSeed &+ 0x9E37_79B9_7F4A_7C15 &* (UInt64(step) << 8 | UInt64(direction & 0xFF) &+ 1)
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
