import Foundation
import ZOTuneBackend
import ZOTuneModels

/// The optimizers, one row each. Adding an optimizer is its file (options type with its
/// `OptimizerSpec`, and the optimizer) plus one row here; the CLI, run headers, `--config` files
/// and `zotune memory` find it through this table.
extension OptimizerSpec {
    public static let all: [OptimizerSpec] = [
        MeZOOptions.spec, ZOMomentumOptions.spec, ZOAdamOptions.spec, ZOSignOptions.spec, ZOConsOptions.spec,
        HiZOOOptions.spec, ZOMuonOptions.spec, JaguarSignOptions.spec, JaguarMuonOptions.spec, DiZOOptions.spec,
        ZoopOptions.spec, FZOOOptions.spec, SparseMeZOOptions.spec, MeZOSVRGOptions.spec, LowRankSPSAOptions.spec,
        LOZOOptions.spec, SubZeroOptions.spec,
    ]

    /// The row of `name` (its `--optimizer` name), if this build has one.
    public static func named(_ name: String) -> OptimizerSpec? { all.first { $0.kind.rawValue == name } }
}

/// An optimizer's options: Codable as the run header's keys, with defaults, and `validate()`
/// naming the offending option. The one place an optimizer's ranges and cross-option rules live.
public protocol ZOOptimizerOptions: Sendable, Codable, Equatable {
    /// The optimizer's row in the table.
    static var spec: OptimizerSpec { get }
    /// The perturbation scale ε every optimizer here probes with.
    var eps: Float { get set }
    /// Throws `OptimizerOptionError` for the first value out of range or rule broken.
    func validate() throws
}

/// An option out of range or two that conflict: names the CLI flag (`description`) and the
/// options key (`key`, as run headers and `--config` files spell it).
public struct OptimizerOptionError: Error, CustomStringConvertible, Sendable {
    public let flag: String
    public let key: String
    public let message: String
    public var description: String { message }

    /// `key` of `O`, its flag looked up in the table; `what` follows the flag ("must be …").
    public init<O: ZOOptimizerOptions>(_ type: O.Type, _ key: String, _ what: String) {
        self.key = key
        flag = O.spec.flags.first { $0.key == key }?.flag ?? "--" + key.replacingOccurrences(of: "_", with: "-")
        message = "\(flag) \(what)"
    }

    init(flag: String, key: String, message: String) {
        self.flag = flag
        self.key = key
        self.message = message
    }
}

/// A command-line flag an optimizer owns and the options field it sets.
public struct OptimizerFlag: Sendable {
    /// "--dizo-eps".
    public let flag: String
    /// "projection_eps": the options' coding key.
    public let key: String
    /// Sets the field to a value of its type (false: the value has another type).
    let assign: @Sendable (inout any ZOOptimizerOptions, Any) -> Bool
    /// A flag that only some settings use ("--jaguar-variant released"): typed under another
    /// setting it would be ignored, so it is refused, naming the setting.
    public let only: String?
    let used: (@Sendable (any ZOOptimizerOptions) -> Bool)?

    public init<O: ZOOptimizerOptions, V>(_ flag: String, _ key: String, _ path: WritableKeyPath<O, V>,
                                          only: (setting: String, uses: @Sendable (O) -> Bool)? = nil) {
        self.flag = flag
        self.key = key
        self.only = only?.setting
        if let uses = only?.uses { used = { uses($0 as! O) } } else { used = nil }
        // Key-path literals capture nothing: sharing one across threads is safe.
        nonisolated(unsafe) let path = path
        assign = { options, value in
            guard var o = options as? O, let v = value as? V else { return false }
            o[keyPath: path] = v
            options = o
            return true
        }
    }
}

/// One optimizer: its name, summary, options (defaults, decoding), flags and factory.
public struct OptimizerSpec: Sendable {
    public let kind: OptimizerKind
    /// One line for help texts and tables.
    public let summary: String
    /// The flags it owns beyond --eps (which every optimizer takes).
    public let flags: [OptimizerFlag]
    /// Flags of other optimizers it refuses with a reason of its own rather than the owners' list
    /// (a 0 given to one of these is no change and passes).
    public let refuses: [String: String]
    /// Why it cannot train a PEFT adapter (nil: it can).
    public let refusesPEFT: String?
    let defaults: @Sendable (Float, PEFTConfig?) -> any ZOOptimizerOptions
    let decode: @Sendable (Decoder) throws -> any ZOOptimizerOptions
    let build: @Sendable (any ZOOptimizerOptions, TrainableSet, any Backend) throws -> any ZOOptimizer
    let modelSet: (@Sendable (any ZOOptimizerOptions, CausalLM) throws -> TrainableSet)?
    let buildOnModel: (@Sendable (any ZOOptimizerOptions, CausalLM, TrainableSet) throws -> any ZOOptimizer)?

    /// `defaults(ε, peft)`: the options before any flag (DiZO projects the adapter under PEFT).
    /// `make` builds over a trainable set; an optimizer that needs the model (Zoop) gives
    /// `trainableSet` and `makeOnModel` too, and a `make` that throws.
    public init<O: ZOOptimizerOptions>(_ name: String, _ summary: String, flags: [OptimizerFlag],
                                       refuses: [String: String] = [:], refusesPEFT: String? = nil,
                                       defaults: @escaping @Sendable (Float, PEFTConfig?) -> O,
                                       make: @escaping @Sendable (O, TrainableSet, any Backend) throws -> any ZOOptimizer,
                                       trainableSet: (@Sendable (O, CausalLM) throws -> TrainableSet)? = nil,
                                       makeOnModel: (@Sendable (O, CausalLM, TrainableSet) throws -> any ZOOptimizer)? = nil) {
        kind = OptimizerKind(name)
        self.summary = summary
        self.flags = flags
        self.refuses = refuses
        self.refusesPEFT = refusesPEFT
        self.defaults = { defaults($0, $1) }
        decode = { try O(from: $0) }
        build = { try make($0 as! O, $1, $2) }
        if let trainableSet { modelSet = { o, model in try trainableSet(o as! O, model) } } else { modelSet = nil }
        if let makeOnModel { buildOnModel = { o, model, set in try makeOnModel(o as! O, model, set) } } else { buildOnModel = nil }
    }
}

/// The optimizers by their command-line names (`--optimizer`): the table's rows.
public struct OptimizerKind: RawRepresentable, Hashable, Sendable, Codable, CaseIterable, CustomStringConvertible {
    public let rawValue: String

    init(_ name: String) { rawValue = name }

    /// nil for a name no row of the table has.
    public init?(rawValue: String) {
        guard OptimizerSpec.named(rawValue) != nil else { return nil }
        self.rawValue = rawValue
    }

    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let k = OptimizerKind(rawValue: name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: OptimizerKind.unknown(name)))
        }
        self = k
    }

    public static var allCases: [OptimizerKind] { OptimizerSpec.all.map(\.kind) }
    public var spec: OptimizerSpec { OptimizerSpec.named(rawValue)! }
    public var summary: String { spec.summary }
    public var description: String { rawValue }

    static func unknown(_ name: String) -> String {
        "unknown optimizer \"\(name)\" (this build knows \(allCases.map(\.rawValue).joined(separator: ", ")))"
    }
}

/// An optimizer's name and hyper-parameters: what the run header stores and what builds it.
/// Encoded as one JSON object, {"name": "zo-adam", "eps": …, "beta1": …}.
public struct OptimizerConfig: Sendable, Equatable, Codable, CustomStringConvertible {
    public var options: any ZOOptimizerOptions

    public init(_ options: any ZOOptimizerOptions) { self.options = options }

    public var spec: OptimizerSpec { type(of: options).spec }
    public var kind: OptimizerKind { spec.kind }

    /// The options if they are of type `O` (`config.options(DiZOOptions.self)`).
    public func options<O: ZOOptimizerOptions>(_ type: O.Type) -> O? { options as? O }

    /// Each optimizer with its default hyper-parameters (ε as given); under `peft`, those an
    /// adapter changes (DiZO projects the adapter's tensors).
    public static func defaults(_ kind: OptimizerKind, eps: Float = 1e-3, peft: PEFTConfig? = nil) -> OptimizerConfig {
        OptimizerConfig(kind.spec.defaults(eps, peft))
    }

    /// The tensors this optimizer trains in `model`: all of them, except for Zoop (the weights,
    /// and biases, of its noisy linear layers).
    public func trainableSet(_ model: CausalLM) throws -> TrainableSet {
        if model.weights.hasBlocks {
            let what = spec.refusesPEFT == nil ? "train an adapter over it (--peft)"
                : "\(kind) moves the base itself (no --peft): load it as floats (--dtype f32 or bf16)"
            throw ModelError(file: model.reader.path, field: "dtype", "the base is held in quantized blocks and stays frozen: \(what)")
        }
        return try spec.modelSet?(options, model) ?? TrainableSet.full(model)
    }

    /// The optimizer over its trainable set of `model`, state allocated on the model's backend.
    public func make(model: CausalLM) throws -> any ZOOptimizer {
        if let build = spec.buildOnModel {
            try validate()
            return try build(options, model, try trainableSet(model))
        }
        return try make(set: try trainableSet(model), backend: model.backend)
    }

    /// The optimizer over `set`, its state allocated on `backend` (Zoop needs the model: `make(model:)`).
    public func make(set: TrainableSet, backend: any Backend) throws -> any ZOOptimizer {
        try validate()
        return try spec.build(options, set, backend)
    }

    /// The perturbation scale ε every optimizer here probes with.
    public var eps: Float { options.eps }

    /// ε positive, then the optimizer's own ranges and rules.
    public func validate() throws {
        guard eps > 0 && eps.isFinite else { throw OptimizerOptionError(flag: "--eps", key: "eps", message: "--eps must be positive (got \(eps))") }
        try options.validate()
    }

    /// `base` (or, when the kind changes or there is none, `kind`'s defaults at `eps`, else the
    /// base's ε, else PEFT's) with the `given` flags applied in order, then validated. A flag the
    /// optimizer does not own is an error naming its owners. This is how the command line's flags
    /// go on top of a `--config` file; with no base it is the command line alone.
    public static func resolve(kind: OptimizerKind?, base: OptimizerConfig?, eps: Float?, given: [(flag: String, value: Any)],
                               peft: PEFTConfig?) throws -> OptimizerConfig {
        let k = kind ?? base?.kind ?? .mezo
        let spec = k.spec
        if peft != nil, let why = spec.refusesPEFT {
            throw OptimizerOptionError(flag: "--optimizer", key: "name", message: "--optimizer \(k) \(why); it does not combine with --peft")
        }
        var apply: [(OptimizerFlag, Any)] = []
        for (flag, value) in given {
            if let f = spec.flags.first(where: { $0.flag == flag }) { apply.append((f, value)); continue }
            if let why = spec.refuses[flag] {
                if let v = value as? Float, v == 0 { continue }
                throw OptimizerOptionError(flag: flag, key: "", message: "\(flag) is not available with \(k) (\(why))")
            }
            let owners = OptimizerSpec.all.filter { $0.flags.contains { $0.flag == flag } }.map(\.kind.rawValue)
            throw OptimizerOptionError(flag: flag, key: "", message: "\(flag) is an option of --optimizer \(owners.joined(separator: "/")), not \(k)")
        }
        var options: any ZOOptimizerOptions
        if let base, base.kind == k {
            options = base.options
            if let eps { options.eps = eps }
        } else {
            options = spec.defaults(eps ?? base?.eps ?? peft?.defaultEps ?? 1e-3, peft)
        }
        for (f, value) in apply where !f.assign(&options, value) {
            throw OptimizerOptionError(flag: f.flag, key: f.key, message: "\(f.flag): a value of type \(type(of: value)) does not fit \(k)'s \(f.key)")
        }
        // A typed flag the resolved setting ignores: named with the others of that setting.
        if let f = apply.map(\.0).first(where: { f in f.used.map { !$0(options) } ?? false }), let setting = f.only {
            let flags = spec.flags.filter { $0.only == setting }.map(\.flag)
            let list = flags.count == 1 ? flags[0] : flags.dropLast().joined(separator: ", ") + " and " + flags.last!
            throw OptimizerOptionError(flag: f.flag, key: f.key, message: "\(list) belong\(flags.count == 1 ? "s" : "") to \(setting)")
        }
        let config = OptimizerConfig(options)
        try config.validate()
        return config
    }

    public static func == (a: OptimizerConfig, b: OptimizerConfig) -> Bool { a.options.isEqual(b.options) }

    private enum Key: String, CodingKey { case name }

    public init(from decoder: Decoder) throws {
        let name = try decoder.container(keyedBy: Key.self).decode(String.self, forKey: .name)
        guard let spec = OptimizerSpec.named(name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [Key.name], debugDescription: OptimizerKind.unknown(name)))
        }
        options = try spec.decode(decoder)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(kind.rawValue, forKey: .name)
        try options.encode(to: encoder)
    }

    /// "zo-adam eps=0.001 beta1=0.9 …" (sorted keys), for logs and errors.
    public var description: String {
        let f = fields
        return ([kind.rawValue] + f.keys.sorted().map { "\($0)=\(f[$0]!)" }).joined(separator: " ")
    }

    /// The hyper-parameters by their header keys ("eps": "0.001"), for descriptions and for
    /// naming the one a resume would change.
    public var fields: [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let d = try? encoder.encode(self), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return [:] }
        return o.filter { $0.key != "name" }.mapValues { "\($0)" }
    }
}

extension ZOOptimizerOptions {
    func isEqual(_ other: any ZOOptimizerOptions) -> Bool { (other as? Self) == self }
}
