import Foundation

/// SQuAD's answer normalisation and token-overlap F1 / exact match (the official evaluation
/// script's definitions), used for SQuAD and DROP.
public enum AnswerMetrics {
    /// Lower case, punctuation removed, articles (a, an, the) removed, whitespace collapsed.
    public static func normalize(_ s: String) -> String {
        let lowered = s.lowercased()
        let noPunct = String(lowered.unicodeScalars.filter { !CharacterSet.punctuationCharacters.contains($0) && !CharacterSet.symbols.contains($0) })
        let words = noPunct.split(whereSeparator: { $0.isWhitespace }).filter { !["a", "an", "the"].contains($0) }
        return words.joined(separator: " ")
    }

    public static func exactMatch(_ prediction: String, _ answers: [String]) -> Double {
        answers.contains { normalize($0) == normalize(prediction) } ? 1 : 0
    }

    /// Best F1 over the gold answers of the bag-of-tokens overlap with the prediction.
    public static func f1(_ prediction: String, _ answers: [String]) -> Double {
        let p = normalize(prediction).split(separator: " ").map(String.init)
        return answers.map { answer -> Double in
            let g = normalize(answer).split(separator: " ").map(String.init)
            if p.isEmpty || g.isEmpty { return p == g ? 1 : 0 }
            var counts: [String: Int] = [:]
            for t in g { counts[t, default: 0] += 1 }
            var common = 0
            for t in p where (counts[t] ?? 0) > 0 { common += 1; counts[t]! -= 1 }
            if common == 0 { return 0 }
            let precision = Double(common) / Double(p.count), recall = Double(common) / Double(g.count)
            return 2 * precision * recall / (precision + recall)
        }.max() ?? 0
    }
}
