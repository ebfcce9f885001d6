import Foundation
import ZOTuneModels

// One parser per original file format. Each reads a whole file and checks every record (a bad
// record anywhere is an error naming the file, line and key); prompts are rendered on demand, so
// sampling 1000 examples from a large file renders only those. Field handling follows the
// Hugging Face loaders MeZO used (glue/sst2, super_glue, boolq, squad, drop) so prompts match
// what MeZO's models saw; differences are noted where they occur.

/// Which original split a file holds (DROP reads different answer fields for each).
public enum SourceSplit: String, Sendable {
    case train, validation
}

/// Examples read from one task file, and anything worth reporting about them.
public struct TaskFileContents: Sendable {
    public let examples: [TaskExample]
    /// E.g. how many records were dropped and why.
    public let notes: [String]
}

/// A checked record whose prompt is rendered when asked for.
struct PendingExample {
    let id: String
    let render: () -> TaskExample
}

/// Reads one file in `task`'s original format. Movies also accepts the vaderSentiment sdist or
/// hutto_ICWSM_2014.tar.gz archive in place of the snippets file.
public func readTaskFile(_ task: TaskName, at url: URL, split: SourceSplit) throws -> TaskFileContents {
    let (pending, notes) = try readPending(task, at: url, split: split)
    return TaskFileContents(examples: pending.map { $0.render() }, notes: notes)
}

func readPending(_ task: TaskName, at url: URL, split: SourceSplit) throws -> (examples: [PendingExample], notes: [String]) {
    switch task {
    case .sst2: return (try readSST2(url), [])
    case .movies: return try readMovieSnippets(url)
    case .rte, .cb: return (try readNLI(task, url), [])
    case .boolq: return (try readBoolQ(url), [])
    case .wic: return (try readWiC(url), [])
    case .wsc: return (try readWSC(url), [])
    case .multirc: return (try readMultiRC(url), [])
    case .copa: return (try readCOPA(url), [])
    case .record: return (try readReCoRD(url), [])
    case .winogrande: return (try readWinoGrande(url), [])
    case .squad: return (try readSQuAD(url), [])
    case .drop:
        let (examples, skipped) = try readDROP(url, split: split)
        let notes = skipped == 0 ? [] : ["\(url.lastPathComponent): skipped \(skipped) question(s) with no usable answer (as the HF drop loader does)"]
        return (examples, notes)
    }
}

// MARK: - SST-2 (GLUE TSV)

/// GLUE SST-2 `train.tsv` / `dev.tsv`: header `sentence\tlabel`, label 0 (negative) or 1 (positive).
func readSST2(_ url: URL) throws -> [PendingExample] {
    let table = try readTSV(url)
    let sentence = try table.column("sentence"), label = try table.column("label")
    let name = url.lastPathComponent
    return try table.rows.map { row in
        let raw = stripWhitespace(row.fields[label])
        guard let y = Int(raw), y == 0 || y == 1 else {
            throw ModelError(file: url.path, field: "line \(row.line): column label", "expected 0 or 1, found \"\(raw)\"")
        }
        let id = "\(name):\(row.line)", text = row.fields[sentence]
        return PendingExample(id: id) { TaskExample(id: id, candidates: MeZOTemplates.sst2(sentence: text), label: y) }
    }
}

// MARK: - SuperGLUE JSON Lines

private func lineID(_ url: URL, _ o: JSONObject) -> String { "\(url.lastPathComponent):\(o.line ?? 0)" }

/// A string label from a fixed set; its index is the class.
private func classLabel(_ o: JSONObject, _ key: String, _ names: [String]) throws -> Int {
    let v = try o.value(key)
    guard let s = v as? String, let i = names.firstIndex(of: s) else {
        throw o.error(key, "expected one of \(names.map { "\"\($0)\"" }.joined(separator: ", ")), found \(describe(v))")
    }
    return i
}

/// RTE {premise, hypothesis, label: entailment|not_entailment}; CB adds contradiction|neutral
/// (HF super_glue class order: entailment, contradiction, neutral).
func readNLI(_ task: TaskName, _ url: URL) throws -> [PendingExample] {
    try readJSONLines(url).map { o in
        let premise = try o.string("premise"), hypothesis = try o.string("hypothesis"), id = lineID(url, o)
        if task == .rte {
            let y = try classLabel(o, "label", ["entailment", "not_entailment"])
            return PendingExample(id: id) { TaskExample(id: id, candidates: MeZOTemplates.rte(premise: premise, hypothesis: hypothesis), label: y) }
        }
        let y = try classLabel(o, "label", ["entailment", "contradiction", "neutral"])
        return PendingExample(id: id) { TaskExample(id: id, candidates: MeZOTemplates.cb(premise: premise, hypothesis: hypothesis), label: y) }
    }
}

/// BoolQ, SuperGLUE form {question, passage: "<title> -- <text>", label: bool} or the original
/// release {question, title, passage, answer: bool}. MeZO loaded HF `boolq`, whose passage has no
/// title, so the SuperGLUE "<title> -- " prefix is removed to give the same prompt.
func readBoolQ(_ url: URL) throws -> [PendingExample] {
    try readJSONLines(url).map { o in
        let question = try o.string("question")
        var passage = try o.string("passage")
        let answer: Bool
        if o.has("label") {
            answer = try o.bool("label")
            if !o.has("title"), let sep = passage.range(of: " -- ") { passage = String(passage[sep.upperBound...]) }
        } else if o.has("answer") {
            answer = try o.bool("answer")
        } else {
            throw o.error("label", "missing key (nor is there an \"answer\" key)")
        }
        let id = lineID(url, o), text = passage
        return PendingExample(id: id) {
            TaskExample(id: id, candidates: MeZOTemplates.boolq(passage: text, question: question), label: answer ? 0 : 1)
        }
    }
}

/// WiC {word, sentence1, sentence2, label: bool}.
func readWiC(_ url: URL) throws -> [PendingExample] {
    try readJSONLines(url).map { o in
        let word = try o.string("word"), s1 = try o.string("sentence1"), s2 = try o.string("sentence2")
        let y = try o.bool("label") ? 1 : 0, id = lineID(url, o)
        return PendingExample(id: id) { TaskExample(id: id, candidates: MeZOTemplates.wic(word: word, sentence1: s1, sentence2: s2), label: y) }
    }
}

/// WSC {text, target: {span1_text, span1_index, span2_text, span2_index}, label: bool}, with the
/// span repairs of HF super_glue `wsc.fixed` (the config MeZO loads).
func readWSC(_ url: URL) throws -> [PendingExample] {
    try readJSONLines(url).map { o in
        let text = try o.string("text")
        let target = try o.object("target")
        let span1 = fixWSCSpan(try target.string("span1_text"), index: try target.int("span1_index"), text: text)
        let span2 = fixWSCSpan(try target.string("span2_text"), index: try target.int("span2_index"), text: text)
        let y = try o.bool("label") ? 1 : 0, id = lineID(url, o)
        return PendingExample(id: id) { TaskExample(id: id, candidates: MeZOTemplates.wsc(text: text, span1: span1, span2: span2), label: y) }
    }
}

/// HF `wsc.fixed` (`_fix_wst`): a span that is not a substring of the text takes the case of the
/// text's word at its index for its first letter, loses trailing "." and has newlines made spaces.
func fixWSCSpan(_ span: String, index: Int, text: String) -> String {
    if text.contains(span) { return span }
    if span == "Kamenev and Zinoviev" || span == "Kamenev, Zinoviev, and Stalin" { return span }
    let words = text.split(whereSeparator: { $0.isWhitespace })
    guard index >= 0, index < words.count, let wordFirst = words[index].unicodeScalars.first,
          let spanFirst = span.unicodeScalars.first else { return span }
    let lower = Character(wordFirst).isLowercase
    var fixed = (lower ? String(spanFirst).lowercased() : String(spanFirst).uppercased()) + String(span.unicodeScalars.dropFirst())
    while fixed.hasSuffix(".") { fixed.removeLast() }
    return fixed.replacingOccurrences(of: "\n", with: " ")
}

/// MultiRC, one paragraph per line: {idx, passage: {text, questions: [{question, idx, answers:
/// [{text, idx, label}]}]}}. One example per answer, as in HF super_glue. Id "file:line/qI/aJ"
/// (positions in the line).
func readMultiRC(_ url: URL) throws -> [PendingExample] {
    var examples: [PendingExample] = []
    for o in try readJSONLines(url) {
        let passage = try o.object("passage")
        let paragraph = try passage.string("text")
        for (qi, q) in try passage.objects("questions").enumerated() {
            let question = try q.string("question")
            for (ai, a) in try q.objects("answers").enumerated() {
                let answer = try a.string("text"), y = try a.bool("label") ? 1 : 0, id = "\(lineID(url, o))/q\(qi)/a\(ai)"
                examples.append(PendingExample(id: id) {
                    TaskExample(id: id, candidates: MeZOTemplates.multirc(paragraph: paragraph, question: question, answer: answer), label: y)
                })
            }
        }
    }
    return examples
}

/// COPA {premise, choice1, choice2, question: cause|effect, label: 0|1}.
func readCOPA(_ url: URL) throws -> [PendingExample] {
    try readJSONLines(url).map { o in
        let question = try o.string("question")
        guard let c = MeZOTemplates.copa(premise: try o.string("premise"), choice1: try o.string("choice1"),
                                         choice2: try o.string("choice2"), question: question) else {
            throw o.error("question", "expected \"cause\" or \"effect\", found \"\(question)\"")
        }
        let y = try o.int("label")
        guard y == 0 || y == 1 else { throw o.error("label", "expected 0 or 1, found \(y)") }
        let id = lineID(url, o)
        return PendingExample(id: id) { TaskExample(id: id, candidates: c, label: y) }
    }
}

/// Unicode-scalar order (Python's string order), for sorting entity names as HF does.
private func scalarLess(_ a: String, _ b: String) -> Bool {
    a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars, by: { $0.value < $1.value })
}

/// Distinct strings by Unicode scalars (Python set semantics), sorted as Python sorts them.
private func sortedDistinct(_ strings: [String]) -> [String] {
    var seen = Set<[UInt32]>(), out: [String] = []
    for s in strings where seen.insert(s.unicodeScalars.map(\.value)).inserted { out.append(s) }
    return out.sorted(by: scalarLess)
}

/// ReCoRD {passage: {text, entities: [{start, end}]}, qas: [{query, answers: [{start, end, text}],
/// idx}], idx}, one example per query. Candidates: the passage's distinct entity strings (offsets
/// in code points, end inclusive), sorted (HF super_glue); label: the first gold answer in that
/// order (MeZO: `candidates.index(correct_candidate[0])`); `answers`: every gold answer string.
func readReCoRD(_ url: URL) throws -> [PendingExample] {
    var examples: [PendingExample] = []
    for o in try readJSONLines(url) {
        let passage = try o.object("passage")
        let text = try passage.string("text")
        let scalars = Array(text.unicodeScalars)
        var mentions: [String] = []
        for e in try passage.objects("entities") {
            let start = try e.int("start"), end = try e.int("end")
            guard start >= 0, start <= end, end < scalars.count else {
                throw e.error(nil, "entity span \(start)...\(end) is outside the passage (\(scalars.count) characters)")
            }
            var s = String.UnicodeScalarView()
            s.append(contentsOf: scalars[start...end])
            mentions.append(String(s))
        }
        let entities = sortedDistinct(mentions)
        guard !entities.isEmpty else { throw passage.error("entities", "no entities") }
        for (qi, q) in try o.objects("qas").enumerated() {
            let query = try q.string("query")
            let answers = sortedDistinct(try q.objects("answers").map { try $0.string("text") })
            guard let gold = answers.first else { throw q.error("answers", "no answers") }
            guard let y = entities.firstIndex(of: gold) else {
                throw q.error("answers", "answer \"\(gold)\" is not one of the passage's entities")
            }
            let id = "\(lineID(url, o))/q\(qi)"
            examples.append(PendingExample(id: id) {
                TaskExample(id: id, candidates: MeZOTemplates.record(passage: text, query: query, entities: entities), label: y, answers: answers)
            })
        }
    }
    return examples
}

/// WinoGrande {qID, sentence (with "_"), option1, option2, answer: "1"|"2"}; label = answer - 1.
func readWinoGrande(_ url: URL) throws -> [PendingExample] {
    try readJSONLines(url).map { o in
        let sentence = try o.string("sentence")
        guard let c = MeZOTemplates.winogrande(sentence: sentence, option1: try o.string("option1"), option2: try o.string("option2")) else {
            throw o.error("sentence", "no \"_\" blank in the sentence")
        }
        let v = try o.value("answer")
        let answer = (v as? String) ?? (v as? NSNumber).map { "\($0)" } ?? ""
        guard answer == "1" || answer == "2" else { throw o.error("answer", "expected \"1\" or \"2\", found \(describe(v))") }
        let id = lineID(url, o), y = answer == "1" ? 0 : 1
        return PendingExample(id: id) { TaskExample(id: id, candidates: c, label: y) }
    }
}

// MARK: - SQuAD v1.1, DROP (JSON documents)

/// SQuAD v1.1 {data: [{title, paragraphs: [{context, qas: [{id, question, answers: [{text}]}]}]}]}.
/// One generation example per question; answers keep SQuAD's order and repeats (HF squad).
func readSQuAD(_ url: URL) throws -> [PendingExample] {
    let doc = try readJSONDocument(url)
    let name = url.lastPathComponent
    var examples: [PendingExample] = []
    for article in try doc.objects("data") {
        let title = try article.string("title")
        for paragraph in try article.objects("paragraphs") {
            let context = try paragraph.string("context")
            for qa in try paragraph.objects("qas") {
                let qid = try qa.string("id"), question = try qa.string("question")
                let answers = try qa.objects("answers").map { try $0.string("text") }
                guard !answers.isEmpty else { throw qa.error("answers", "question \(qid) has no answers") }
                let id = "\(name):\(qid)"
                examples.append(PendingExample(id: id) {
                    TaskExample(id: id, candidates: [], label: nil,
                                prompt: MeZOTemplates.squad(title: title, context: context, question: question), answers: answers)
                })
            }
        }
    }
    guard !examples.isEmpty else { throw ModelError(file: url.path, field: "data", "no questions") }
    return examples
}

/// DROP {passage_id: {passage, qa_pairs: [{question, query_id, answer, validated_answers}]}}. Gold
/// strings as HF drop builds `answers_spans` (which MeZO uses): from `answer` for the train split,
/// from `validated_answers` otherwise; a number, else a date "day month year" (blanks left out),
/// plus the spans. Questions whose answers mix kinds or are empty are skipped, as HF does.
func readDROP(_ url: URL, split: SourceSplit) throws -> (examples: [PendingExample], skipped: Int) {
    let doc = try readJSONDocument(url)
    let name = url.lastPathComponent
    var examples: [PendingExample] = [], skipped = 0
    // JSONSerialization's dictionaries are unordered: sort passage ids for a stable order.
    for passageID in doc.dict.keys.sorted() {
        let section = try doc.object(passageID)
        let passage = try section.string("passage")
        for (qi, qa) in try section.objects("qa_pairs").enumerated() {
            let question = try qa.string("question")
            let queryID = qa.has("query_id") ? try qa.string("query_id") : "\(passageID)/q\(qi)"
            let golds = split == .train ? [try qa.object("answer")] : try qa.objects("validated_answers")
            guard let answers = try dropAnswers(golds) else { skipped += 1; continue }
            let id = "\(name):\(queryID)"
            examples.append(PendingExample(id: id) {
                TaskExample(id: id, candidates: [], label: nil, prompt: MeZOTemplates.drop(passage: passage, question: question), answers: answers)
            })
        }
    }
    guard !examples.isEmpty else { throw ModelError(file: url.path, field: "file", "no usable questions") }
    return (examples, skipped)
}

/// One DROP answer list flattened to strings; nil where HF drop raises AnswerParsingError.
private func dropAnswers(_ golds: [JSONObject]) throws -> [String]? {
    var out: [String] = []
    for a in golds {
        let number = try a.string("number")
        let dateObject = try a.object("date")
        let parts = try ["day", "month", "year"].map { dateObject.has($0) ? try dateObject.string($0) : "" }
        let spans = try a.strings("spans")
        let hasDate = parts.contains { !$0.isEmpty }
        if !number.isEmpty {
            if hasDate || !spans.isEmpty { return nil }
            out.append(number)
        } else if hasDate {
            if !spans.isEmpty { return nil }
            out.append(stripWhitespace(parts.joined(separator: " ")))
        }
        out += spans
    }
    return out.isEmpty ? nil : out
}
