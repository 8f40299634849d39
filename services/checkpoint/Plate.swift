/// Chinese licence plates: the one form stored ("豫A12345", "豫AD12345" for new energy) and where a plate
/// was issued (its province abbreviation and city letter), which stands for a vehicle's origin when the
/// driver declares none.
enum Plate {
    /// A plate as normalised, and the region its prefix names.
    struct Parsed: Equatable {
        var text: String
        /// The province's administrative code, e.g. "420000" for 鄂.
        var province: String
        /// The city's code when the prefix's letter is known (鄂A → "420100"), else the province's.
        var region: String
    }

    /// "豫a·12345", "豫Ａ １２３４５" → "豫A12345". Nil when it is not a plate: a province abbreviation, a city
    /// letter, then 5 letters or digits (6 for new energy), letters without I and O; an ordinary plate may
    /// end in 挂 学 警 港 澳 领 试 or 超 instead of its fifth.
    ///
    /// Scalar by scalar, upper-casing ASCII only: a Character per scalar cost 6 % of the server's CPU at
    /// ingest, and upper-casing any letter could turn one into two ("ß" → "SS") and trap.
    static func parse(_ raw: String, newEnergy: Bool) -> Parsed? {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(9)
        for scalar in raw.unicodeScalars where !separators.contains(scalar) {
            var value = scalar.value
            if (0xFF01...0xFF5E).contains(value) { value -= 0xFEE0 }  // full-width ASCII
            if (0x61...0x7A).contains(value) { value -= 0x20 }  // a-z
            scalars.append(Unicode.Scalar(value) ?? scalar)
            if scalars.count > 12 { return nil }
        }
        guard scalars.count >= 7, let province = provinces[scalars[0]], isLetter(scalars[1]) else { return nil }
        var rest = scalars[2...]
        guard rest.count == (newEnergy ? 6 : 5) else { return nil }
        if !newEnergy, let last = rest.last, suffixes.contains(last) { rest.removeLast() }
        guard rest.allSatisfy({ isLetter($0) || ("0"..."9").contains($0) }) else { return nil }
        var utf8: [UInt8] = []
        utf8.reserveCapacity(16)
        for scalar in scalars { UTF8.encode(scalar) { utf8.append($0) } }
        let prefix = String(decoding: utf8[..<(UTF8.width(scalars[0]) + 1)], as: UTF8.self)
        return Parsed(text: String(decoding: utf8, as: UTF8.self), province: province, region: cities[prefix] ?? province)
    }

    /// A plate's letters: A-Z without I and O (they read as 1 and 0).
    private static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
        ("A"..."Z").contains(scalar) && scalar != "I" && scalar != "O"
    }

    static let separators: Set<Unicode.Scalar> = [" ", "\u{3000}", "·", ".", "-", "\u{30FB}", "\u{FF0E}", "\u{FF0D}"]

    static let suffixes: Set<Unicode.Scalar> = ["挂", "学", "警", "港", "澳", "领", "试", "超"]

    /// Province abbreviations and their administrative codes.
    static let provinces: [Unicode.Scalar: String] = [
        "京": "110000", "津": "120000", "冀": "130000", "晋": "140000", "蒙": "150000", "辽": "210000",
        "吉": "220000", "黑": "230000", "沪": "310000", "苏": "320000", "浙": "330000", "皖": "340000",
        "闽": "350000", "赣": "360000", "鲁": "370000", "豫": "410000", "鄂": "420000", "湘": "430000",
        "粤": "440000", "桂": "450000", "琼": "460000", "渝": "500000", "川": "510000", "贵": "520000",
        "云": "530000", "藏": "540000", "陕": "610000", "甘": "620000", "青": "630000", "宁": "640000",
        "新": "650000",
    ]

    /// City letters: every provincial capital, and every city of Henan (the home province) and Hubei.
    static let cities: [String: String] = [
        "冀A": "130100", "晋A": "140100", "蒙A": "150100", "辽A": "210100", "吉A": "220100", "黑A": "230100",
        "苏A": "320100", "浙A": "330100", "皖A": "340100", "闽A": "350100", "赣A": "360100", "鲁A": "370100",
        "湘A": "430100", "粤A": "440100", "桂A": "450100", "琼A": "460100", "川A": "510100", "贵A": "520100",
        "云A": "530100", "藏A": "540100", "陕A": "610100", "甘A": "620100", "青A": "630100", "宁A": "640100",
        "新A": "650100",
        "豫A": "410100", "豫B": "410200", "豫C": "410300", "豫D": "410400", "豫E": "410500", "豫F": "410600",
        "豫G": "410700", "豫H": "410800", "豫J": "410900", "豫K": "411000", "豫L": "411100", "豫M": "411200",
        "豫N": "411400", "豫P": "411600", "豫Q": "411700", "豫R": "411300", "豫S": "411500", "豫U": "419001",
        "鄂A": "420100", "鄂B": "420200", "鄂C": "420300", "鄂D": "421000", "鄂E": "420500", "鄂F": "420600",
        "鄂G": "420700", "鄂H": "420800", "鄂J": "421100", "鄂K": "420900", "鄂L": "421200", "鄂M": "429004",
        "鄂N": "429005", "鄂P": "429021", "鄂Q": "422800", "鄂R": "429006", "鄂S": "421300",
    ]
}

/// Administrative codes of provinces and cities (GB/T 2260): six digits, the first two a province.
enum RegionCode {
    static let provinces: Set<String> = [
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43",
        "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
    ]

    static func isValid(_ code: String) -> Bool {
        code.utf8.count == 6 && code.utf8.allSatisfy { (48...57).contains($0) } && provinces.contains(String(code.prefix(2)))
    }

    /// "410102" → "420000".
    static func province(of code: String) -> String { String(code.prefix(2)) + "0000" }
}
