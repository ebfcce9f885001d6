import Foundation
import ZOTuneModels

/// How θ is cut into blocks (ZO-FAMILY §4.11). Every trainable tensor belongs to exactly one
/// block; blocks keep the set's order (embeddings first, head last).
public enum BlockLevel: String, Sendable, Codable, CaseIterable {
    /// Each transformer layer one block; every tensor outside the layers (embeddings, positions,
    /// final norm, an untied head) a block of its own: ZO-Bench's "transformer-block".
    case layer
    /// As `layer`, with the final norm in the last layer's block (the norm only scales that layer's
    /// output for the head): block-wise pre-training, where a norm-only block would get a turn of its own.
    case layerNorm = "layer+norm"
    /// Each layer's attention half (attention + the norm before it) and MLP half: ZO-Bench's "mlp-attn".
    case attnMLP = "attn-mlp"
    /// Every tensor a block.
    case tensor
    /// One block: plain ZO over θ (the check that the block machinery adds nothing).
    case whole
    /// Blocks given as name patterns (`patterns`): block i = tensors whose name contains pattern i
    /// and no earlier one.
    case patterns
}

/// A block: a name for logs and the indices of its tensors in the trainable set.
public struct Block: Sendable, Equatable {
    public let name: String
    public let entries: [Int]
}

public enum BlockPartition {
    /// (layer index, role) of a checkpoint tensor name (PEFT's `base_model.model.…` and LoRA's
    /// adapters included: the family types know their names), or nil for tensors outside the
    /// transformer layers.
    public static func layerPart(_ name: String) -> (layer: Int, role: Role)? {
        guard let r = Architecture.role(of: name), let layer = r.layer else { return nil }
        return (layer, r.role)
    }

    static func layerIndex(_ name: String) -> Int? { layerPart(name)?.layer }

    /// Attention or MLP half of a tensor inside a layer (norms go with the sublayer they feed).
    static func isAttentionHalf(_ name: String) -> Bool { layerPart(name)?.role.isAttention ?? false }

    /// The blocks of `names` (the trainable set's tensor names, in order) at `level`.
    public static func blocks(_ names: [String], level: BlockLevel, patterns: [String] = []) throws -> [Block] {
        if level == .patterns {
            var members = [[Int]](repeating: [], count: patterns.count)
            for (i, name) in names.enumerated() {
                guard let p = patterns.firstIndex(where: { name.contains($0) }) else {
                    throw BlockError("tensor \(name) matches none of the block patterns \(patterns): every trainable tensor must be in a block (end with a catch-all such as \".\")")
                }
                members[p].append(i)
            }
            if let p = members.firstIndex(where: \.isEmpty) { throw BlockError("block pattern \"\(patterns[p])\" matches no trainable tensor") }
            return zip(patterns, members).map { Block(name: $0, entries: $1) }
        }
        var keys: [String] = []
        var members: [String: [Int]] = [:]
        let lastLayer = names.compactMap(layerIndex).max()
        for (i, name) in names.enumerated() {
            let key: String
            switch level {
            case .whole: key = "all"
            case .tensor: key = name
            case .layer: key = layerIndex(name).map { "layer \($0)" } ?? name
            case .layerNorm:
                let finalNorm = Architecture.role(of: name)?.role == .finalNorm
                key = (layerIndex(name) ?? (finalNorm ? lastLayer : nil)).map { "layer \($0)" } ?? name
            case .attnMLP: key = layerIndex(name).map { "layer \($0) " + (isAttentionHalf(name) ? "attn" : "mlp") } ?? name
            case .patterns: preconditionFailure()
            }
            if members[key] == nil { keys.append(key) }
            members[key, default: []].append(i)
        }
        return keys.map { Block(name: $0, entries: members[$0]!) }
    }
}

public struct BlockError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
