import Foundation

// MeZO's prompt templates (princeton-nlp/MeZO, large_models/templates.py, with the template and
// candidate choices of large_models/tasks.py). The strings are MeZO's, character for character.
//
// How MeZO turns a template into a scored option (utils.py `encode_prompt`): the prompt is
// `encode(sample).strip(' ')`, each option's full text is `verbalize(sample, c).strip(' ')`, and the
// option tokens are what the full text adds to the prompt. In every template used here
// verbalize = encode + a suffix, so `options(encoded:suffixes:)` makes that split on strings:
// Candidate.prefix = the stripped prompt (one string shared by all options), continuation = the
// rest (e.g. " great", or "Yes" after a prompt ending in "\n").

/// Prompts and options per task, as MeZO builds them. Candidates are in label order.
public enum MeZOTemplates {
    /// MeZO's split of `encode.strip(' ')` and `(encode + suffix).strip(' ')` into prefix and option.
    static func options(encoded: String, suffixes: [String]) -> [Candidate] {
        let prompt = stripSpaces(encoded)
        // Spaces that end `encoded` are stripped from the prompt but stay inside the full text.
        let inner = String(repeating: " ", count: prompt.isEmpty ? 0 : encoded.utf8.reversed().prefix { $0 == 0x20 }.count)
        return suffixes.map { suffix in
            let rest = prompt.isEmpty ? stripSpaces(suffix) : rstripSpaces(suffix)
            return Candidate(prefix: prompt, continuation: rest.isEmpty ? "" : inner + rest)
        }
    }

    /// SST2Template: "{sentence.strip()} It was" + " terrible" (label 0) / " great" (label 1).
    /// Also used for the movie-review snippets.
    public static func sst2(sentence: String) -> [Candidate] {
        let text = stripWhitespace(sentence)
        return options(encoded: "\(text) It was", suffixes: [" terrible", " great"])
    }

    /// RTETemplate: "{premise}\nDoes this mean that \"{hypothesis}\" is true? Yes or No?\n" +
    /// "Yes" (0 entailment) / "No" (1 not_entailment).
    public static func rte(premise: String, hypothesis: String) -> [Candidate] {
        options(encoded: "\(premise)\nDoes this mean that \"\(hypothesis)\" is true? Yes or No?\n", suffixes: ["Yes", "No"])
    }

    /// CBTemplate: "Suppose {premise} Can we infer that \"{hypothesis}\"? Yes, No, or Maybe?\n" +
    /// "Yes" (0 entailment) / "No" (1 contradiction) / "Maybe" (2 neutral).
    public static func cb(premise: String, hypothesis: String) -> [Candidate] {
        options(encoded: "Suppose \(premise) Can we infer that \"\(hypothesis)\"? Yes, No, or Maybe?\n", suffixes: ["Yes", "No", "Maybe"])
    }

    /// BoolQTemplateV3 (BoolQDataset's default, template_version=2): "{passage} {Question?}\n" +
    /// "Yes" (0, answer true) / "No" (1, false). The question gets a "?" and a capital first letter.
    public static func boolq(passage: String, question: String) -> [Candidate] {
        var q = question
        if !q.hasSuffix("?") { q += "?" }
        if let first = q.unicodeScalars.first {
            q = String(first).uppercased() + String(q.unicodeScalars.dropFirst())
        }
        return options(encoded: "\(passage) \(q)\n", suffixes: ["Yes", "No"])
    }

    /// WICTemplate: "Does the word \"{word}\" have the same meaning in these two sentences? Yes, No?\n
    /// {sentence1}\n{sentence2}\n" + "No" (0, false) / "Yes" (1, true).
    public static func wic(word: String, sentence1: String, sentence2: String) -> [Candidate] {
        options(encoded: "Does the word \"\(word)\" have the same meaning in these two sentences? Yes, No?\n\(sentence1)\n\(sentence2)\n",
                suffixes: ["No", "Yes"])
    }

    /// WSCTemplate: "{text}\nIn the previous sentence, does the pronoun \"{span2.lower()}\" refer to
    /// {span1}? Yes or No?\n" + "No" (0, false) / "Yes" (1, true). Spans as in HF `wsc.fixed`.
    public static func wsc(text: String, span1: String, span2: String) -> [Candidate] {
        options(encoded: "\(text)\nIn the previous sentence, does the pronoun \"\(span2.lowercased())\" refer to \(span1)? Yes or No?\n",
                suffixes: ["No", "Yes"])
    }

    /// MultiRCTemplate: "{paragraph}\nQuestion: {question}\nI found this answer \"{answer}\". Is that
    /// correct? Yes or No?\n" + "No" (0) / "Yes" (1). One example per (paragraph, question, answer).
    public static func multirc(paragraph: String, question: String, answer: String) -> [Candidate] {
        options(encoded: "\(paragraph)\nQuestion: \(question)\nI found this answer \"\(answer)\". Is that correct? Yes or No?\n",
                suffixes: ["No", "Yes"])
    }

    /// CopaTemplate (capitalization "correct"): premise without its final "." + " because " (cause)
    /// or " so " (effect), then the choice with its first word lower-cased unless it is "I".
    /// Both options share the prompt: "{premise} because" + " {choice}". nil for another `question`.
    public static func copa(premise: String, choice1: String, choice2: String, question: String) -> [Candidate]? {
        let conjunction: String
        switch question {
        case "effect": conjunction = " so "
        case "cause": conjunction = " because "
        default: return nil
        }
        var p = rstripWhitespace(premise)
        if p.hasSuffix(".") { p = String(p.unicodeScalars.dropLast()) }
        func capitalize(_ c: String) -> String {
            var words = c.components(separatedBy: " ")
            if words[0] != "I" { words[0] = words[0].lowercased() }
            return words.joined(separator: " ")
        }
        return options(encoded: p + conjunction, suffixes: [capitalize(choice1), capitalize(choice2)])
    }

    /// ReCoRDTemplateGPT3 (what ReCoRDDataset uses): prompt "{passage}\n-" with each "@highlight\n"
    /// replaced by "- "; option " {query with @placeholder replaced by the entity}", one per entity.
    public static func record(passage: String, query: String, entities: [String]) -> [Candidate] {
        let text = passage.replacingOccurrences(of: "@highlight\n", with: "- ")
        return options(encoded: "\(text)\n-",
                       suffixes: entities.map { " " + query.replacingOccurrences(of: "@placeholder", with: $0) })
    }

    /// SQuADv2Template (MeZO's SQuAD task uses it on SQuAD v1.1):
    /// "Title: {title}\nContext: {context}\nQuestion: {question.strip()}\nAnswer:".
    public static func squad(title: String, context: String, question: String) -> String {
        stripSpaces("Title: \(title)\nContext: \(context)\nQuestion: \(stripWhitespace(question))\nAnswer:")
    }

    /// DROPTemplate: "Passage: {passage}\nQuestion: {question.strip()}\nAnswer:".
    public static func drop(passage: String, question: String) -> String {
        stripSpaces("Passage: \(passage)\nQuestion: \(stripWhitespace(question))\nAnswer:")
    }

    /// WinoGrande is not among MeZO's tasks; this is the usual partial scoring (GPT-3 paper §3.4,
    /// lm-evaluation-harness): the prefix is the sentence up to "_" with the option filled in, the
    /// continuation " " + the rest of the sentence, the same for both options. nil without "_".
    public static func winogrande(sentence: String, option1: String, option2: String) -> [Candidate]? {
        guard let blank = sentence.firstIndex(of: "_") else { return nil }
        let before = String(sentence[..<blank])
        let after = " " + stripWhitespace(String(sentence[sentence.index(after: blank)...]))
        return [option1, option2].map { Candidate(prefix: before + $0, continuation: after) }
    }
}

extension TaskExample {
    /// Generation tasks: the text MeZO trains on after `prompt` (verbalize's " {answers[0]}\n").
    public var generationTarget: String? {
        guard isGeneration, let first = answers.first else { return nil }
        return " \(first)\n"
    }
}
