//! Filing documents as PDF: a small, deterministic PDF 1.4 writer that lays out blocks of
//! text (title, headings, labelled fields, paragraphs) on A4 pages with the standard
//! Helvetica fonts, so a filing can be printed or copied from like the authority's form.
//!
//! Only `std`: no compression, no embedded fonts, no timestamps, so the same blocks always
//! give the same bytes.

/// One block of a document, in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// The document's heading (large, bold).
    Title(String),
    /// A section heading (bold).
    Heading(String),
    /// A labelled value: the label in bold on its own line, the value below it (wrapped;
    /// empty value shows "–").
    Field { label: String, value: String },
    /// Running text.
    Paragraph(String),
}

/// Renders the blocks as A4 pages (Helvetica and Helvetica-Bold, the standard 14 fonts,
/// WinAnsiEncoding), with `title` in the document information and a footer "Sida N av M"
/// plus `footer` on every page.
pub fn render(title: &str, footer: &str, blocks: &[Block]) -> Vec<u8> {
    render_marked(title, "", footer, blocks)
}

/// Like [`render`], with `header` (a marking such as "Kan omfattas av sekretess enligt
/// 18 kap. 8 § OSL") in bold above a rule at the top of every page. A marking is never cut:
/// a long one wraps and the text starts lower. An empty `header` gives what `render` gives.
pub fn render_marked(title: &str, header: &str, footer: &str, blocks: &[Block]) -> Vec<u8> {
    let header = wrap(
        &encode(&header.replace(['\r', '\n'], " ")),
        HEADER,
        TEXT_WIDTH,
    );
    let top = header_top(header.len());
    let pages = layout(blocks, top);
    let count = pages.len();
    let mut pdf = PdfWriter::new();
    pdf.object(1, b"<< /Type /Catalog /Pages 2 0 R /Lang (sv-SE) >>");
    let kids: Vec<String> = (0..count)
        .map(|i| format!("{} 0 R", page_object(i)))
        .collect();
    let kids = kids.join(" ");
    pdf.object(
        2,
        format!("<< /Type /Pages /Kids [{kids}] /Count {count} >>").as_bytes(),
    );
    for (number, font) in [(3, "Helvetica"), (4, "Helvetica-Bold")] {
        let dict = format!(
            "<< /Type /Font /Subtype /Type1 /BaseFont /{font} /Encoding /WinAnsiEncoding >>"
        );
        pdf.object(number, dict.as_bytes());
    }
    let mut info = b"<< /Title ".to_vec();
    info.extend_from_slice(&text_string(title));
    info.extend_from_slice(b" /Producer (avvik) >>");
    pdf.object(5, &info);
    let footer = encode(&footer.replace(['\r', '\n'], " "));
    for (i, lines) in pages.iter().enumerate() {
        let dict = format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] \
             /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
            num(PAGE_WIDTH),
            num(PAGE_HEIGHT),
            page_object(i) + 1
        );
        pdf.object(page_object(i), dict.as_bytes());
        let page = Page {
            header: &header,
            footer: &footer,
            number: i + 1,
            count,
        };
        pdf.stream(page_object(i) + 1, &content(lines, &page));
    }
    pdf.finish()
}

const PAGE_WIDTH: f64 = 595.0;
const PAGE_HEIGHT: f64 = 842.0;
const MARGIN: f64 = 56.0;
const TEXT_WIDTH: f64 = PAGE_WIDTH - 2.0 * MARGIN;
/// The top of the first line's box.
const TOP: f64 = PAGE_HEIGHT - MARGIN;
/// No line's box reaches below this; the footer lives underneath.
const BOTTOM: f64 = 72.0;
const FOOTER_RULE: f64 = 60.0;
const FOOTER_BASELINE: f64 = 46.0;
/// The header's first baseline, inside the top margin; its rule sits below its last line.
const HEADER_BASELINE: f64 = PAGE_HEIGHT - 32.0;
const HEADER_RULE_GAP: f64 = 5.0;
/// Room between the header's rule and the first line's box.
const HEADER_CLEARANCE: f64 = 12.0;

/// Space before a block of each kind (dropped at the top of a page).
const HEADING_GAP: f64 = 14.0;
const FIELD_GAP: f64 = 8.0;
const PARAGRAPH_GAP: f64 = 8.0;

/// WinAnsi codes of "–" (shown for an empty value) and "…" (ends a cut footer).
const EN_DASH: u8 = 0x96;
const ELLIPSIS: u8 = 0x85;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    /// Advance width of one WinAnsi code in 1/1000 em (the AFM unit).
    fn width(self, code: u8) -> u64 {
        let table = match self {
            Font::Regular => &HELVETICA_WIDTHS,
            Font::Bold => &HELVETICA_BOLD_WIDTHS,
        };
        code.checked_sub(32)
            .map_or(0, |i| u64::from(table[usize::from(i)]))
    }

    fn text_width(self, text: &[u8]) -> u64 {
        text.iter().map(|&b| self.width(b)).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Style {
    font: Font,
    size: f64,
    leading: f64,
}

impl Style {
    const fn new(font: Font, size: f64, leading: f64) -> Self {
        Style {
            font,
            size,
            leading,
        }
    }

    /// `max` points in glyph units (1/1000 em) at this size.
    fn units(self, max: f64) -> u64 {
        (max * 1000.0 / self.size) as u64
    }
}

const TITLE: Style = Style::new(Font::Bold, 16.0, 20.0);
const HEADING: Style = Style::new(Font::Bold, 12.5, 16.0);
const LABEL: Style = Style::new(Font::Bold, 9.5, 12.5);
const BODY: Style = Style::new(Font::Regular, 10.5, 14.0);
const FOOTER: Style = Style::new(Font::Regular, 8.0, 10.0);
const HEADER: Style = Style::new(Font::Bold, 9.0, 11.0);

/// Where the header's rule is drawn below `lines` header lines.
fn header_rule(lines: usize) -> f64 {
    HEADER_BASELINE - (lines.saturating_sub(1)) as f64 * HEADER.leading - HEADER_RULE_GAP
}

/// The top of the first line's box on every page, below a header of `lines` lines.
fn header_top(lines: usize) -> f64 {
    if lines == 0 {
        TOP
    } else {
        TOP.min(header_rule(lines) - HEADER_CLEARANCE)
    }
}

/// One laid-out line: its style, baseline and WinAnsi bytes.
struct Line {
    style: Style,
    baseline: f64,
    text: Vec<u8>,
}

/// Object number of page `index` (0-based); its content stream is the next number.
fn page_object(index: usize) -> usize {
    6 + 2 * index
}

/// Flows the blocks onto pages whose first line's box starts at `top`; always at least
/// one (possibly empty) page.
fn layout(blocks: &[Block], top: f64) -> Vec<Vec<Line>> {
    let mut flow = Flow {
        pages: vec![Vec::new()],
        y: top,
        top,
    };
    for (i, block) in blocks.iter().enumerate() {
        let (style, gap, text) = match block {
            Block::Field { label, value } => {
                let label = wrap(&encode(label), LABEL, TEXT_WIDTH);
                let mut value = wrap(&encode(value), BODY, TEXT_WIDTH);
                if value.is_empty() {
                    value.push(vec![EN_DASH]);
                }
                flow.gap(FIELD_GAP);
                // The label never ends a page without at least the value's first line.
                flow.keep(label.len() as f64 * LABEL.leading + BODY.leading);
                flow.lines(LABEL, label);
                flow.lines(BODY, value);
                continue;
            }
            Block::Title(text) => (TITLE, 0.0, text),
            Block::Heading(text) => (HEADING, HEADING_GAP, text),
            Block::Paragraph(text) => (BODY, PARAGRAPH_GAP, text),
        };
        let lines = wrap(&encode(text), style, TEXT_WIDTH);
        if lines.is_empty() {
            continue;
        }
        flow.gap(gap);
        if !matches!(block, Block::Paragraph(_)) {
            // A title or heading starts a page rather than end one: keep the next block's
            // first lines with it.
            let next = match blocks.get(i + 1) {
                Some(Block::Field { .. }) => FIELD_GAP + LABEL.leading + BODY.leading,
                Some(Block::Paragraph(_)) => PARAGRAPH_GAP + BODY.leading,
                _ => 0.0,
            };
            flow.keep(lines.len() as f64 * style.leading + next);
        }
        flow.lines(style, lines);
    }
    flow.pages
}

/// The pages so far, the top of the next line's box on the last one, and where a new
/// page's first box starts.
struct Flow {
    pages: Vec<Vec<Line>>,
    y: f64,
    top: f64,
}

impl Flow {
    fn page_is_empty(&self) -> bool {
        self.pages.last().is_none_or(Vec::is_empty)
    }

    fn gap(&mut self, height: f64) {
        if !self.page_is_empty() {
            self.y -= height;
        }
    }

    /// Starts a new page unless `height` still fits on this one (or this one is empty).
    fn keep(&mut self, height: f64) {
        if self.y - height < BOTTOM && !self.page_is_empty() {
            self.pages.push(Vec::new());
            self.y = self.top;
        }
    }

    fn lines(&mut self, style: Style, lines: Vec<Vec<u8>>) {
        for text in lines {
            self.keep(style.leading);
            let baseline = self.y - style.size;
            self.y -= style.leading;
            if let Some(page) = self.pages.last_mut() {
                page.push(Line {
                    style,
                    baseline,
                    text,
                });
            }
        }
    }
}

/// Breaks WinAnsi text into lines no wider than `max` points: at spaces, at explicit
/// newlines, and inside a word that is longer than a line. Runs of spaces collapse; blank
/// lines at either end are dropped, those in between kept.
fn wrap(text: &[u8], style: Style, max: f64) -> Vec<Vec<u8>> {
    let (font, limit) = (style.font, style.units(max));
    let space = font.width(b' ');
    let mut lines = Vec::new();
    for source in text.split(|&b| b == b'\n') {
        let (mut line, mut width) = (Vec::new(), 0);
        for word in source.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            let word_width = font.text_width(word);
            if !line.is_empty() && width + space + word_width <= limit {
                line.push(b' ');
                line.extend_from_slice(word);
                width += space + word_width;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                width = 0;
            }
            for &b in word {
                let glyph = font.width(b);
                if !line.is_empty() && width + glyph > limit {
                    lines.push(std::mem::take(&mut line));
                    width = 0;
                }
                line.push(b);
                width += glyph;
            }
        }
        lines.push(line);
    }
    while lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let start = lines.iter().position(|l| !l.is_empty()).unwrap_or(0);
    lines.split_off(start)
}

/// What every page carries besides its lines: the header's lines, the footer, its number.
struct Page<'a> {
    header: &'a [Vec<u8>],
    footer: &'a [u8],
    number: usize,
    count: usize,
}

/// A thin grey rule across the text width at height `y`.
fn rule(out: &mut Vec<u8>, y: f64) {
    let (left, right, y) = (num(MARGIN), num(PAGE_WIDTH - MARGIN), num(y));
    out.extend_from_slice(format!("q 0.5 w 0.6 G {left} {y} m {right} {y} l S Q\n").as_bytes());
}

/// One page's content stream: the header and its rule (if any), its lines, then the footer
/// rule, the footer and "Sida N av M".
fn content(lines: &[Line], page: &Page) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, text) in page.header.iter().enumerate() {
        let baseline = HEADER_BASELINE - i as f64 * HEADER.leading;
        show(&mut out, HEADER, MARGIN, baseline, text);
    }
    if !page.header.is_empty() {
        rule(&mut out, header_rule(page.header.len()));
    }
    for line in lines {
        show(&mut out, line.style, MARGIN, line.baseline, &line.text);
    }
    rule(&mut out, FOOTER_RULE);
    let footer = page.footer;
    let label = format!("Sida {} av {}", page.number, page.count);
    let label_width = FOOTER.font.text_width(label.as_bytes()) as f64 * FOOTER.size / 1000.0;
    // A footer too long for its room is cut at a word and ends in "…".
    let ellipsis = FOOTER.font.width(ELLIPSIS) as f64 * FOOTER.size / 1000.0;
    let room = TEXT_WIDTH - label_width - 12.0;
    let mut footer_lines = wrap(footer, FOOTER, room - ellipsis).into_iter();
    let mut first = footer_lines.next().unwrap_or_default();
    if footer_lines.next().is_some() {
        first.push(ELLIPSIS);
    }
    show(&mut out, FOOTER, MARGIN, FOOTER_BASELINE, &first);
    let x = PAGE_WIDTH - MARGIN - label_width;
    show(&mut out, FOOTER, x, FOOTER_BASELINE, label.as_bytes());
    out
}

fn show(out: &mut Vec<u8>, style: Style, x: f64, y: f64, text: &[u8]) {
    if text.is_empty() {
        return;
    }
    let font = match style.font {
        Font::Regular => "F1",
        Font::Bold => "F2",
    };
    let (size, x, y) = (num(style.size), num(x), num(y));
    out.extend_from_slice(format!("BT /{font} {size} Tf {x} {y} Td (").as_bytes());
    for &b in text {
        if matches!(b, b'(' | b')' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.extend_from_slice(b") Tj ET\n");
}

/// A number for a content stream or dictionary: at most two decimals, no trailing zeros.
fn num(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A PDF text string for the document information: UTF-16BE with a byte-order mark, so
/// any title survives (PDFDocEncoding differs from WinAnsi in 0x80–0x9F).
fn text_string(text: &str) -> Vec<u8> {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.is_empty() {
        return b"()".to_vec();
    }
    let mut out = b"<FEFF".to_vec();
    for unit in text.encode_utf16() {
        out.extend_from_slice(format!("{unit:04X}").as_bytes());
    }
    out.push(b'>');
    out
}

/// Unicode to WinAnsi (Windows-1252) bytes, newlines kept as `\n`: tabs become spaces,
/// control and invisible characters are dropped, a combining accent merges into the letter
/// before it when WinAnsi has the composed letter (text typed on a Mac arrives decomposed)
/// and is dropped otherwise, and anything else without a WinAnsi code becomes "?".
fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push(b'\n');
            }
            '\n' | '\u{2028}' | '\u{2029}' => out.push(b'\n'),
            '\t' => out.push(b' '),
            '\u{300}'..='\u{36F}' => {
                if let Some(last) = out.last_mut() {
                    *last = compose(*last, c).unwrap_or(*last);
                }
            }
            // Soft hyphen, zero-width and direction marks, byte-order mark.
            '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}' => {}
            c if c.is_control() => {}
            c => out.push(win_ansi(c)),
        }
    }
    out
}

fn win_ansi(c: char) -> u8 {
    match c {
        ' '..='~' | '\u{A0}'..='\u{FF}' => c as u8,
        '\u{2010}' | '\u{2011}' | '\u{2212}' => b'-',
        '\u{202F}' => 0xA0,
        '\u{2000}'..='\u{200A}' | '\u{205F}' | '\u{3000}' => b' ',
        UNASSIGNED => b'?',
        _ => CP1252_HIGH
            .chars()
            .position(|h| h == c)
            .map_or(b'?', |i| 0x80 + i as u8),
    }
}

/// Windows-1252's 0x80–0x9F in order; `UNASSIGNED` holds the places of its five gaps.
const CP1252_HIGH: &str = "€\u{FFFF}‚ƒ„…†‡ˆ‰Š‹Œ\u{FFFF}Ž\u{FFFF}\u{FFFF}‘’“”•–—˜™š›œ\u{FFFF}žŸ";
const UNASSIGNED: char = '\u{FFFF}';

/// Combining accents with the letters WinAnsi has composed: (accent, bases, composed).
const COMPOSITIONS: [(char, &str, &str); 8] = [
    ('\u{300}', "AEIOUaeiou", "ÀÈÌÒÙàèìòù"),
    ('\u{301}', "AEIOUYaeiouy", "ÁÉÍÓÚÝáéíóúý"),
    ('\u{302}', "AEIOUaeiou", "ÂÊÎÔÛâêîôû"),
    ('\u{303}', "ANOano", "ÃÑÕãñõ"),
    ('\u{308}', "AEIOUYaeiouy", "ÄËÏÖÜŸäëïöüÿ"),
    ('\u{30A}', "Aa", "Åå"),
    ('\u{30C}', "SZsz", "ŠŽšž"),
    ('\u{327}', "Cc", "Çç"),
];

fn compose(base: u8, accent: char) -> Option<u8> {
    let (_, bases, composed) = COMPOSITIONS.iter().find(|&&(a, _, _)| a == accent)?;
    let index = bases.bytes().position(|b| b == base)?;
    composed.chars().nth(index).map(win_ansi)
}

/// Writes numbered objects in order and remembers their byte offsets for the xref table.
struct PdfWriter {
    out: Vec<u8>,
    offsets: Vec<usize>,
}

impl PdfWriter {
    fn new() -> Self {
        // The second line's high bytes mark the file as binary for transfer tools.
        let out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
        PdfWriter {
            out,
            offsets: Vec::new(),
        }
    }

    /// Objects must come in order 1, 2, 3, …
    fn object(&mut self, number: usize, body: &[u8]) {
        debug_assert_eq!(number, self.offsets.len() + 1);
        self.offsets.push(self.out.len());
        self.out
            .extend_from_slice(format!("{number} 0 obj\n").as_bytes());
        self.out.extend_from_slice(body);
        self.out.extend_from_slice(b"\nendobj\n");
    }

    fn stream(&mut self, number: usize, data: &[u8]) {
        let mut body = format!("<< /Length {} >>\nstream\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\nendstream");
        self.object(number, &body);
    }

    fn finish(mut self) -> Vec<u8> {
        let (xref, size) = (self.out.len(), self.offsets.len() + 1);
        let mut table = format!("xref\n0 {size}\n0000000000 65535 f \n");
        for offset in &self.offsets {
            table += &format!("{offset:010} 00000 n \n");
        }
        table += &format!(
            "trailer\n<< /Size {size} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n"
        );
        self.out.extend_from_slice(table.as_bytes());
        self.out
    }
}

/// Advance widths (1/1000 em) of WinAnsi codes 32–255, from Adobe's Helvetica and
/// Helvetica-Bold AFM files; the unassigned codes carry the bullet's width, which is what
/// viewers show for them (this writer never emits them).
#[rustfmt::skip]
const HELVETICA_WIDTHS: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 350,
    556, 350, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350,
    350, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 350, 500, 667,
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 578, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];
#[rustfmt::skip]
const HELVETICA_BOLD_WIDTHS: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 350,
    556, 350, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350,
    350, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 350, 500, 667,
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278,
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SWEDISH: &str = "Personuppgiftsincident på förskolan Åkerbäret, ÖVERSIKT: 1 200 elever";
    const LONG_VALUE: &str = "En elevlista med namn, personnummer och vårdnadshavares \
        telefonnummer skickades av misstag till fel mottagare (en extern leverantör). \
        Mottagaren meddelade felet samma dag och bekräftade skriftligen att meddelandet \
        raderats. Inga känsliga personuppgifter enligt artikel 9 berördes, men listan \
        omfattade även skyddade identiteter – därför bedöms risken som hög.";

    fn field(label: &str, value: &str) -> Block {
        Block::Field {
            label: label.to_owned(),
            value: value.to_owned(),
        }
    }

    fn sample() -> Vec<Block> {
        vec![
            Block::Title("Anmälan om personuppgiftsincident".to_owned()),
            Block::Paragraph(SWEDISH.to_owned()),
            Block::Heading("1. Organisation".to_owned()),
            field(
                "Organisationens namn",
                "Förskolan Åkerbäret, Norrköpings kommun",
            ),
            field("Kontaktperson", "Åsa Öberg (dataskyddsombud)"),
            field("Sökväg till underlag", r"C:\delad\elevlistor (kopia)"),
            Block::Heading("2. Incidenten".to_owned()),
            field("Beskrivning av incidenten", LONG_VALUE),
            field("Tidslinje", "Upptäckt: 2024-03-05\nAnmäld: 2024-03-07"),
            field("Övrigt", "”Åtgärdat” • kostnad 5 € … ‘klart’ — ja"),
            field("Vidtagna åtgärder", ""),
        ]
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn words(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Checks startxref, every xref entry against its object, the trailer and every
    /// stream's /Length; returns the number of pages.
    fn assert_structure(pdf: &[u8]) -> usize {
        assert!(pdf.starts_with(b"%PDF-1.4\n") && pdf.ends_with(b"\n%%EOF\n"));
        // Same byte offsets as the PDF, so str methods can parse it.
        let text: String = pdf
            .iter()
            .map(|&b| if b.is_ascii() { b as char } else { '?' })
            .collect();
        let start = text.rfind("startxref\n").expect("startxref") + 10;
        let xref: usize = text[start..]
            .trim_end_matches("\n%%EOF\n")
            .parse()
            .expect("offset");
        let mut lines = text[xref..].split('\n');
        assert_eq!(
            lines.next(),
            Some("xref"),
            "startxref points at the xref table"
        );
        let size: usize = lines
            .next()
            .and_then(|l| l.strip_prefix("0 ")?.parse().ok())
            .unwrap();
        assert_eq!(lines.next(), Some("0000000000 65535 f "));
        for object in 1..size {
            let entry = lines.next().expect("an xref entry");
            assert!(
                entry.len() == 19 && entry.ends_with(" 00000 n "),
                "{entry:?}"
            );
            let offset: usize = entry[..10].parse().expect("an offset");
            assert!(
                text[offset..].starts_with(&format!("{object} 0 obj\n")),
                "{object}"
            );
        }
        assert_eq!(lines.next(), Some("trailer"));
        let trailer = format!("<< /Size {size} /Root 1 0 R /Info 5 0 R >>");
        assert_eq!(lines.next(), Some(trailer.as_str()));
        let mut streams = 0;
        for (at, _) in text.match_indices("/Length ") {
            let (length, data) = text[at + 8..]
                .split_once(" >>\nstream\n")
                .expect("a stream");
            let length: usize = length.parse().expect("a length");
            assert!(
                data[length..].starts_with("\nendstream\nendobj\n"),
                "/Length {length}"
            );
            streams += 1;
        }
        assert_eq!(streams * 2 + 6, size, "one content stream per page");
        streams
    }

    /// Runs a poppler tool on `pdf`; `after` are the arguments after the file.
    fn poppler(tool: &str, args: &[&str], after: &[&str], pdf: &[u8]) -> String {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let name = format!("avvik-pdf-{}-{run}.pdf", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, pdf).expect("write the temporary PDF");
        let output = Command::new(tool)
            .args(args)
            .arg(&path)
            .args(after)
            .output();
        let _ = std::fs::remove_file(&path);
        let output = output.unwrap_or_else(|e| {
            panic!("{tool} could not be run ({e}): these tests need poppler-utils (apt-get install poppler-utils)")
        });
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{tool} failed: {stderr}");
        String::from_utf8(output.stdout).expect("UTF-8 from poppler")
    }

    #[test]
    fn xref_offsets_and_stream_lengths_are_exact() {
        let pdf = render("Anmälan", "Förskolan Åkerbäret", &sample());
        assert_eq!(assert_structure(&pdf), 1);
        for font in ["/BaseFont /Helvetica ", "/BaseFont /Helvetica-Bold "] {
            assert!(contains(&pdf, font.as_bytes()), "{font}");
        }
        assert!(contains(&pdf, b"/Encoding /WinAnsiEncoding"));
        assert!(contains(&pdf, b"/Producer (avvik)"));
    }

    #[test]
    fn same_input_gives_identical_bytes() {
        let first = render("Anmälan", "avvik", &sample());
        assert_eq!(first, render("Anmälan", "avvik", &sample()));
        assert_ne!(first, render("Anmälan", "avvik", &sample()[1..]));
    }

    #[test]
    fn long_document_has_several_pages_with_page_numbers() {
        let blocks: Vec<Block> = (1..=120)
            .map(|i| field(&format!("Uppgift {i}"), LONG_VALUE))
            .collect();
        let pdf = render("Lång", "Ärende 2024-17", &blocks);
        let pages = assert_structure(&pdf);
        assert!(pages >= 5, "{pages} pages");
        assert!(contains(&pdf, format!("/Count {pages} ").as_bytes()));
        assert!(contains(&pdf, format!("(Sida 2 av {pages}) Tj").as_bytes()));
        let text = poppler("pdftotext", &[], &["-"], &pdf);
        assert!(text.contains(&format!("Sida 2 av {pages}")));
        assert!(text.contains(&format!("Sida {pages} av {pages}")));
        assert!(text.contains("Uppgift 120"));
    }

    #[test]
    fn pdftotext_gives_back_the_swedish_text() {
        let blocks = sample();
        let wrapped = wrap(&encode(LONG_VALUE), BODY, TEXT_WIDTH).len();
        assert!(wrapped >= 3, "the long value must wrap");
        let title = "Anmälan om personuppgiftsincident – Åkerbäret";
        let pdf = render(title, "Diarienr KS 2024/17", &blocks);
        for args in [&["-layout"][..], &[][..]] {
            let text = words(&poppler("pdftotext", args, &["-"], &pdf));
            assert!(text.contains(SWEDISH), "{args:?}: {text}");
            assert!(text.contains("Anmälan om personuppgiftsincident Personuppgiftsincident"));
            assert!(text.contains("2. Incidenten"), "{args:?}");
            assert!(text.contains("Diarienr KS 2024/17") && text.contains("Sida 1 av 1"));
            assert!(
                text.contains("Vidtagna åtgärder –"),
                "{args:?}: empty value shows –"
            );
            for block in &blocks {
                if let Block::Field { label, value } = block {
                    assert!(text.contains(&words(label)), "{args:?}: label {label}");
                    assert!(text.contains(&words(value)), "{args:?}: value {value}");
                }
            }
        }
        let info = poppler("pdfinfo", &[], &[], &pdf);
        assert!(info.contains(title) && info.contains("avvik"), "{info}");
    }

    #[test]
    fn the_header_is_on_every_page_above_the_text() {
        let header = "Kan omfattas av sekretess enligt 18 kap. 8 § OSL";
        let blocks: Vec<Block> = (1..=60)
            .map(|i| field(&format!("Uppgift {i}"), LONG_VALUE))
            .collect();
        let pdf = render_marked("Ärende", header, "AVV-2026-0001", &blocks);
        let pages = assert_structure(&pdf);
        assert!(pages >= 3, "{pages} pages");
        let text = poppler("pdftotext", &[], &["-"], &pdf);
        let per_page: Vec<String> = text
            .split('\u{c}')
            .map(words)
            .filter(|p| !p.is_empty())
            .collect();
        assert_eq!(per_page.len(), pages, "{text}");
        for (i, page) in per_page.iter().enumerate() {
            assert!(page.starts_with(header), "page {}: {page}", i + 1);
        }
        // Without a header the document is exactly what `render` makes.
        assert_eq!(
            render_marked("Ärende", "", "avvik", &sample()),
            render("Ärende", "avvik", &sample())
        );
        assert_ne!(
            render_marked("Ärende", header, "avvik", &sample()),
            render("Ärende", "avvik", &sample())
        );
    }

    #[test]
    fn a_long_header_wraps_and_is_never_cut() {
        let header = "Sekretessmarkering enligt offentlighets- och sekretesslagen ".repeat(4);
        let lines = wrap(&encode(&header), HEADER, TEXT_WIDTH).len();
        assert!(lines >= 3, "{lines} lines");
        let top = header_top(lines);
        assert!(top < TOP && top < header_rule(lines));
        let blocks: Vec<Block> = (0..80)
            .map(|i| Block::Paragraph(format!("Rad {i}")))
            .collect();
        for page in layout(&blocks, top) {
            for line in &page {
                assert!(line.baseline + line.style.size <= top + 1e-9);
            }
        }
        let pdf = render_marked("", &header, "", &blocks);
        assert_structure(&pdf);
        let text = words(&poppler("pdftotext", &[], &["-"], &pdf));
        assert!(text.starts_with(&words(&header)), "{text}");
    }

    #[test]
    fn long_footer_is_cut_with_an_ellipsis() {
        let pdf = render("", &"Förskolan Åkerbäret ".repeat(20), &[]);
        let text = words(&poppler("pdftotext", &["-layout"], &["-"], &pdf));
        assert!(text.contains("Åkerbäret Förskolan… Sida 1 av 1"), "{text}");
    }

    #[test]
    fn encodes_unicode_as_win_ansi() {
        assert_eq!(encode("åäöÅÄÖéü"), b"\xE5\xE4\xF6\xC5\xC4\xD6\xE9\xFC");
        assert_eq!(
            encode("€–—‘’“”•…ƒŸ"),
            b"\x80\x96\x97\x91\x92\x93\x94\x95\x85\x83\x9F"
        );
        assert_eq!(encode("a\tb\u{1}c\u{7f}\r\nd\re\nf"), b"a bc\nd\ne\nf");
        assert_eq!(encode("😀 ω\u{FFFF}"), b"? ??");
        // Decomposed å and ö, as macOS sends them; an accent WinAnsi lacks is dropped.
        assert_eq!(encode("a\u{30A}o\u{308}x\u{323}"), b"\xE5\xF6x");
    }

    #[test]
    fn every_header_character_the_configuration_accepts_is_printed() {
        for c in (0..0x3000).filter_map(char::from_u32) {
            if crate::config::printable_in_pdf(c) {
                let bytes = encode(&c.to_string());
                assert_eq!(bytes.len(), 1, "{c:?}");
                assert!(c == '?' || bytes[0] != b'?', "{c:?} prints as ?");
            }
        }
        // And every letter and sign the fonts have is accepted.
        let latin1 = (' '..='~').chain(('\u{A0}'..='\u{FF}').filter(|&c| c != '\u{AD}'));
        let high = CP1252_HIGH.chars().filter(|&c| c != UNASSIGNED);
        for c in latin1.chain(high) {
            assert!(crate::config::printable_in_pdf(c), "{c:?}");
        }
    }

    #[test]
    fn wrapped_lines_fit_and_keep_every_character() {
        let varied: Vec<String> = (0..600).map(|i| "il".repeat(1 + i * 7 % 13)).collect();
        let varied = varied.join(" ");
        let text = format!("{LONG_VALUE} {} slut\n\nny   rad {varied}", "Å".repeat(300));
        for style in [TITLE, HEADING, LABEL, BODY] {
            let lines = wrap(&encode(&text), style, TEXT_WIDTH);
            let limit = style.units(TEXT_WIDTH);
            assert!(lines.iter().all(|l| style.font.text_width(l) <= limit));
            // Greedy: the next line's first word would not have fitted on this one.
            for pair in lines
                .windows(2)
                .filter(|p| !p[0].is_empty() && !p[1].is_empty())
            {
                let first = pair[1].split(|&b| b == b' ').next().unwrap_or_default();
                let width = style.font.text_width(&pair[0]) + style.font.text_width(first);
                assert!(width + style.font.width(b' ') > limit);
            }
            assert!(lines.len() > 4);
            let joined: Vec<u8> = lines.concat().into_iter().filter(|&b| b != b' ').collect();
            let mut expected = encode(&text);
            expected.retain(|&b| b != b' ' && b != b'\n');
            assert_eq!(joined, expected);
            assert!(
                lines.iter().any(Vec::is_empty),
                "the blank line between paragraphs stays"
            );
        }
    }

    #[test]
    fn headings_and_labels_never_end_a_page_and_lines_stay_above_the_footer() {
        // Paragraphs and short fields advance by different steps, so together they put
        // the last field at every position near the foot of a page.
        for (filler, fields, heading) in
            (0..45).flat_map(|p| (0..4).flat_map(move |f| [false, true].map(move |h| (p, f, h))))
        {
            let mut blocks: Vec<Block> = (0..filler)
                .map(|i| Block::Paragraph(format!("Rad {i}")))
                .chain((0..fields).map(|i| field("Kort", &format!("Värde {i}"))))
                .collect();
            if heading {
                blocks.push(Block::Heading("Rubrik".to_owned()));
            }
            blocks.push(field("Etikett som hör ihop med sitt värde", LONG_VALUE));
            for page in layout(&blocks, TOP) {
                let last = page.last().expect("no empty page");
                assert_ne!(last.style, LABEL, "filler {filler}, heading {heading}");
                assert_ne!(last.style, HEADING, "filler {filler}, heading {heading}");
                for line in &page {
                    let descent = line.style.leading - line.style.size;
                    assert!(line.baseline - descent >= BOTTOM - 1e-9);
                    assert!(line.baseline + line.style.size <= TOP + 1e-9);
                }
            }
        }
    }

    #[test]
    fn odd_input_does_not_panic() {
        let huge = "Lorem ipsum dolor (sit) amet\\ ".repeat(10_000);
        let cases = [
            vec![],
            vec![
                Block::Title(String::new()),
                Block::Heading(" ".into()),
                Block::Paragraph("\n".into()),
            ],
            vec![field("", ""), field("\n\n", " \t ")],
            vec![Block::Paragraph("😀🙂ωж".repeat(500))],
            vec![field(&"x".repeat(100_000), &"W".repeat(100_000))],
            vec![Block::Paragraph(
                "\u{0}\u{1}\u{1b}[31m\u{7f}\u{85}\u{301}".to_owned(),
            )],
            vec![Block::Paragraph(huge)],
        ];
        for blocks in cases {
            let pdf = render("😀\n(titel)", &"lång sidfot ".repeat(100), &blocks);
            assert_structure(&pdf);
        }
    }
}
