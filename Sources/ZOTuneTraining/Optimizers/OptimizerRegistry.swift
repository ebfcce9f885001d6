import Foundation
import ZOTuneBackend
import ZOTuneModels

/// The optimizers by their command-line names (`--optimizer`).
public enum OptimizerKind: String, Sendable, CaseIterable, Codable {
    case mezo
    case zoSGDMomentum = "zo-sgd-mmt"
    case zoAdam = "zo-adam"
    case zoSign = "zo-sign"
    case zoCons = "zo-cons"
    case hizoo
    case zoMuon = "zo-muon"
    case jaguarSign = "jaguar-sign"
    case jaguarMuon = "jaguar-muon"
    case dizo
    case zoop

    /// One line for help texts and tables.
    public var summary: String {
        switch self {
        case .mezo: return "ZO-SGD with n-SPSA, in place (MeZO)"
        case .zoSGDMomentum: return "ZO-SGD with heavy-ball momentum"
        case .zoAdam: return "Adam on the ZO estimate, f32 moments"
        case .zoSign: return "ZO-SGD on sign(g)·z"
        case .zoCons: return "conservative ZO-SGD: the best of θ, θ−Δ, θ+Δ (5 forwards)"
        case .hizoo: return "HiZOO: diagonal-Hessian-preconditioned ZO-SGD (3 forwards)"
        case .zoMuon: return "ZO-Muon: Newton–Schulz-orthogonalised ZO matrix steps"
        case .jaguarSign: return "ZO-Jaguar SignSGD: coordinate blocks, sign of a block memory"
        case .jaguarMuon: return "Jaguar-Muon: block memory per matrix, orthogonalised by NS"
        case .dizo: return "DiZO: ZO-SGD plus periodic layer-wise projection searches"
        case .zoop: return "Zoop: activation noise, per-sample α, local linear-layer updates (not replayable)"
        }
    }
}

/// An optimizer's name and hyper-parameters: what the run header stores and what builds it.
/// Encoded as one JSON object, {"name": "zo-adam", "eps": …, "beta1": …}.
public enum OptimizerConfig: Sendable, Equatable, Codable, CustomStringConvertible {
    case mezo(MeZOOptions)
    case zoSGDMomentum(ZOMomentumOptions)
    case zoAdam(ZOAdamOptions)
    case zoSign(ZOSignOptions)
    case zoCons(ZOConsOptions)
    case hizoo(HiZOOOptions)
    case zoMuon(ZOMuonOptions)
    case jaguarSign(JaguarSignOptions)
    case jaguarMuon(JaguarMuonOptions)
    case dizo(DiZOOptions)
    case zoop(ZoopOptions)

    public var kind: OptimizerKind {
        switch self {
        case .mezo: return .mezo
        case .zoSGDMomentum: return .zoSGDMomentum
        case .zoAdam: return .zoAdam
        case .zoSign: return .zoSign
        case .zoCons: return .zoCons
        case .hizoo: return .hizoo
        case .zoMuon: return .zoMuon
        case .jaguarSign: return .jaguarSign
        case .jaguarMuon: return .jaguarMuon
        case .dizo: return .dizo
        case .zoop: return .zoop
        }
    }

    /// Each optimizer with its default hyper-parameters (ε as given).
    public static func defaults(_ kind: OptimizerKind, eps: Float = 1e-3) -> OptimizerConfig {
        switch kind {
        case .mezo: return .mezo(MeZOOptions(eps: eps))
        case .zoSGDMomentum: return .zoSGDMomentum(ZOMomentumOptions(eps: eps))
        case .zoAdam: return .zoAdam(ZOAdamOptions(eps: eps))
        case .zoSign: return .zoSign(ZOSignOptions(eps: eps))
        case .zoCons: return .zoCons(ZOConsOptions(eps: eps))
        case .hizoo: return .hizoo(HiZOOOptions(eps: eps))
        case .zoMuon: return .zoMuon(ZOMuonOptions(eps: eps))
        case .jaguarSign: return .jaguarSign(JaguarSignOptions(eps: eps))
        case .jaguarMuon: return .jaguarMuon(JaguarMuonOptions(eps: eps))
        case .dizo: return .dizo(DiZOOptions(eps: eps))
        case .zoop: return .zoop(ZoopOptions(eps: eps))
        }
    }

    /// The tensors this optimizer trains in `model`: all of them, except for Zoop (the weights,
    /// and biases, of its noisy linear layers).
    public func trainableSet(_ model: CausalLM) throws -> TrainableSet {
        if model.weights.hasBlocks {
            throw ModelError(file: model.reader.path, field: "dtype", "the base is held in quantized blocks and stays frozen: train an adapter over it (--peft)")
        }
        if case .zoop(let o) = self { return try o.trainableSet(model) }
        return TrainableSet.full(model)
    }

    /// The optimizer over its trainable set of `model`, state allocated on the model's backend.
    public func make(model: CausalLM) throws -> any ZOOptimizer {
        if case .zoop(let o) = self { return try Zoop(model: model, set: try trainableSet(model), options: o) }
        return try make(set: try trainableSet(model), backend: model.backend)
    }

    /// The optimizer over `set`, its state allocated on `backend` (Zoop needs the model: `make(model:)`).
    public func make(set: TrainableSet, backend: any Backend) throws -> any ZOOptimizer {
        switch self {
        case .mezo(let o): return MeZO(set: set, options: o, backend: backend)
        case .zoSGDMomentum(let o): return try ZOMomentum(set: set, options: o, backend: backend)
        case .zoAdam(let o): return try ZOAdam(set: set, options: o, backend: backend)
        case .zoSign(let o): return ZOSign(set: set, options: o, backend: backend)
        case .zoCons(let o): return ZOCons(set: set, options: o, backend: backend)
        case .hizoo(let o): return try HiZOO(set: set, options: o, backend: backend)
        case .zoMuon(let o): return try ZOMuon(set: set, options: o, backend: backend)
        case .jaguarSign(let o): return try JaguarSign(set: set, options: o, backend: backend)
        case .jaguarMuon(let o): return try JaguarMuon(set: set, options: o, backend: backend)
        case .dizo(let o): return try DiZO(set: set, options: o, backend: backend)
        case .zoop: throw BackendError("zoop perturbs activations: it is built from the model (make(model:)), not from a trainable set")
        }
    }

    /// The perturbation scale ε every optimizer here probes with.
    public var eps: Float {
        switch self {
        case .mezo(let o): return o.eps
        case .zoSGDMomentum(let o): return o.eps
        case .zoAdam(let o): return o.eps
        case .zoSign(let o): return o.eps
        case .zoCons(let o): return o.eps
        case .hizoo(let o): return o.eps
        case .zoMuon(let o): return o.eps
        case .jaguarSign(let o): return o.eps
        case .jaguarMuon(let o): return o.eps
        case .dizo(let o): return o.eps
        case .zoop(let o): return o.eps
        }
    }

    private enum Key: String, CodingKey { case name }

    public init(from decoder: Decoder) throws {
        let name = try decoder.container(keyedBy: Key.self).decode(String.self, forKey: .name)
        guard let kind = OptimizerKind(rawValue: name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [Key.name],
                                                    debugDescription: "unknown optimizer \"\(name)\" (this build knows \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")))"))
        }
        switch kind {
        case .mezo: self = .mezo(try MeZOOptions(from: decoder))
        case .zoSGDMomentum: self = .zoSGDMomentum(try ZOMomentumOptions(from: decoder))
        case .zoAdam: self = .zoAdam(try ZOAdamOptions(from: decoder))
        case .zoSign: self = .zoSign(try ZOSignOptions(from: decoder))
        case .zoCons: self = .zoCons(try ZOConsOptions(from: decoder))
        case .hizoo: self = .hizoo(try HiZOOOptions(from: decoder))
        case .zoMuon: self = .zoMuon(try ZOMuonOptions(from: decoder))
        case .jaguarSign: self = .jaguarSign(try JaguarSignOptions(from: decoder))
        case .jaguarMuon: self = .jaguarMuon(try JaguarMuonOptions(from: decoder))
        case .dizo: self = .dizo(try DiZOOptions(from: decoder))
        case .zoop: self = .zoop(try ZoopOptions(from: decoder))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(kind.rawValue, forKey: .name)
        switch self {
        case .mezo(let o): try o.encode(to: encoder)
        case .zoSGDMomentum(let o): try o.encode(to: encoder)
        case .zoAdam(let o): try o.encode(to: encoder)
        case .zoSign(let o): try o.encode(to: encoder)
        case .zoCons(let o): try o.encode(to: encoder)
        case .hizoo(let o): try o.encode(to: encoder)
        case .zoMuon(let o): try o.encode(to: encoder)
        case .jaguarSign(let o): try o.encode(to: encoder)
        case .jaguarMuon(let o): try o.encode(to: encoder)
        case .dizo(let o): try o.encode(to: encoder)
        case .zoop(let o): try o.encode(to: encoder)
        }
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
