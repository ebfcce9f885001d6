import Foundation
import ZOTuneBackend
import ZOTuneModels

/// An adapter over a frozen base (ZO-FAMILY.md §5): a forward hook whose tensors alone form θ.
/// The model holds it as its hook; the optimizer sees only `set`.
public protocol PEFTAdapter: ForwardHook {
    var config: PEFTConfig { get }
    /// The adapter's tensors (f32), under HF PEFT's names, which also key their z streams.
    var set: TrainableSet { get }
    /// Back to the initial values: keep-best and resume replay the trajectory from there.
    func reset() throws
    /// adapter_config.json of HF PEFT for this adapter on `model` (base path given separately).
    func peftConfig(model: CausalLM) -> [String: Any]
}

/// `--peft`: which adapter and its options, as the run header stores it ({"name": "lora", …}).
public enum PEFTConfig: Sendable, Equatable, Codable, CustomStringConvertible {
    case lora(LoRAOptions)
    case prefix(PrefixOptions)
    case prompt(PromptOptions)

    public static let names = ["lora", "prefix", "prompt"]

    public var name: String {
        switch self {
        case .lora: return "lora"
        case .prefix: return "prefix"
        case .prompt: return "prompt"
        }
    }

    /// The adapter on `model`, initialised (not yet installed as the model's hook).
    public func make(model: CausalLM) throws -> any PEFTAdapter {
        switch self {
        case .lora(let o): return try LoRA(model: model, options: o)
        case .prefix(let o): return try PrefixTuning(model: model, options: o)
        case .prompt(let o): return try PromptTuning(model: model, options: o)
        }
    }

    /// MeZO's learning rate and ε for this adapter (LoRA 1e-4 / 1e-2, prefix 1e-2 / 1e-1; prompt
    /// tuning from ZO-Bench's grid, 1e-3 / 1e-2): what `train` uses unless --lr / --eps are given.
    public var defaultLR: Float {
        switch self {
        case .lora: return 1e-4
        case .prefix: return 1e-2
        case .prompt: return 1e-3
        }
    }

    public var defaultEps: Float {
        switch self {
        case .lora: return 1e-2
        case .prefix: return 1e-1
        case .prompt: return 1e-2
        }
    }

    private enum Key: String, CodingKey { case name }

    public init(from decoder: Decoder) throws {
        let name = try decoder.container(keyedBy: Key.self).decode(String.self, forKey: .name)
        switch name {
        case "lora": self = .lora(try LoRAOptions(from: decoder))
        case "prefix": self = .prefix(try PrefixOptions(from: decoder))
        case "prompt": self = .prompt(try PromptOptions(from: decoder))
        default:
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [Key.name],
                                                    debugDescription: "unknown PEFT method \"\(name)\" (this build knows \(PEFTConfig.names.joined(separator: ", ")))"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(name, forKey: .name)
        switch self {
        case .lora(let o): try o.encode(to: encoder)
        case .prefix(let o): try o.encode(to: encoder)
        case .prompt(let o): try o.encode(to: encoder)
        }
    }

    public var description: String {
        switch self {
        case .lora(let o): return "lora rank=\(o.rank) alpha=\(o.alpha) targets=\(o.targets.joined(separator: ",")) seed=\(o.seed)"
        case .prefix(let o): return "prefix tokens=\(o.tokens) seed=\(o.seed)"
        case .prompt(let o): return "prompt tokens=\(o.tokens) seed=\(o.seed)"
        }
    }
}

/// Options of prefix and prompt tuning: P virtual positions (defaults: 5 for prefix tuning, 10 for
/// prompt tuning) and the seed of the random token ids they are initialised from.
public struct VirtualTokenOptions: Sendable, Equatable, Codable {
    public var tokens: Int
    public var seed: UInt64

    public init(tokens: Int, seed: UInt64 = 0) {
        self.tokens = tokens
        self.seed = seed
    }
}

public typealias PrefixOptions = VirtualTokenOptions
public typealias PromptOptions = VirtualTokenOptions

/// P token ids ~ U[0, vocab) from (seed, salt): the "random vocabulary tokens" prefix and prompt
/// tuning initialise from (the whole vocabulary, as the anchors draw them).
func randomTokens(_ count: Int, vocab: Int, seed: UInt64, salt: UInt64) -> [Int32] {
    (0..<count).map { Int32(stepSeed(runSeed: seed ^ salt, step: $0, direction: 5) % UInt64(vocab)) }
}
