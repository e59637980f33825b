//! Forbidden data classes: built into the code, not configurable.
//!
//! Whatever a reviewed allowlist says, a field whose path names one of these classes is never
//! kept. Matching works on words, so it is robust to case, separators and nesting: `Email`,
//! `e_mail`, `userEmail`, `company.name` and `context.traits.company.name` all match.

use std::fmt;

use veil_sanitized::MessageKind;

/// A class of data that never leaves the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForbiddenClass {
    /// Company, firm or organization names.
    CompanyName,
    /// Display, first, last, full or user names of people.
    UserName,
    /// E-mail addresses.
    EmailAddress,
    /// Document, workspace, folder, matter and file names, and titles, paths and URLs that embed them.
    DocumentName,
    /// IP addresses.
    IpAddress,
    /// Free-text search queries.
    SearchQuery,
}

impl ForbiddenClass {
    /// A short, stable name for errors and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ForbiddenClass::CompanyName => "company name",
            ForbiddenClass::UserName => "user name",
            ForbiddenClass::EmailAddress => "e-mail address",
            ForbiddenClass::DocumentName => "document, workspace, folder, matter or file name",
            ForbiddenClass::IpAddress => "IP address",
            ForbiddenClass::SearchQuery => "free-text search query",
        }
    }
}

impl fmt::Display for ForbiddenClass {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Words that make any field an e-mail field, wherever they appear in its path.
const EMAIL_WORDS: &[&str] = &[
    "email",
    "emails",
    "mail",
    "mails",
    "mailbox",
    "emailaddress",
];
/// Words that make any field an IP address field.
const IP_WORDS: &[&str] = &[
    "ip",
    "ips",
    "ipaddress",
    "ipv4",
    "ipv6",
    "remoteaddr",
    "xforwardedfor",
];
/// Words that mark an organization.
const COMPANY_WORDS: &[&str] = &[
    "company",
    "companies",
    "organization",
    "organisation",
    "org",
    "firm",
    "employer",
];
/// Words that mark a document-like object whose name is forbidden.
const DOCUMENT_WORDS: &[&str] = &[
    "document",
    "documents",
    "doc",
    "docs",
    "file",
    "files",
    "folder",
    "folders",
    "workspace",
    "workspaces",
    "matter",
    "matters",
    "attachment",
    "attachments",
    "page",
    "screen",
    "dir",
    "directory",
];
/// Leaf words that embed document names (titles, paths and URLs) whatever their parent is.
const LOCATOR_WORDS: &[&str] = &[
    "title",
    "titles",
    "path",
    "paths",
    "pathname",
    "url",
    "urls",
    "uri",
    "uris",
    "href",
    "link",
    "links",
    "referrer",
    "referer",
    "filename",
    "filenames",
    "subject",
    "location",
];
/// Leaf words that name a free-text search.
const QUERY_WORDS: &[&str] = &[
    "query",
    "queries",
    "q",
    "search",
    "searchterm",
    "searchterms",
    "keyword",
    "keywords",
];
/// Leaf words (or word endings) that name a person or a thing.
const NAME_WORDS: &[&str] = &[
    "name",
    "names",
    "username",
    "fullname",
    "displayname",
    "firstname",
    "lastname",
    "surname",
    "nickname",
    "givenname",
    "familyname",
    "middlename",
];
/// Parents whose bare `name` is the name of software, not of a person, firm or document.
const SOFTWARE_PARENTS: &[&str] = &[
    "app",
    "application",
    "os",
    "library",
    "browser",
    "platform",
    "product",
    "sdk",
    "runtime",
];

/// Every word the class rules above use: generic names of forbidden things (`document`,
/// `email`, `name`), which may be shown as key names since they describe a field, not a person.
pub(crate) fn class_words() -> impl Iterator<Item = &'static str> {
    [
        EMAIL_WORDS,
        IP_WORDS,
        COMPANY_WORDS,
        DOCUMENT_WORDS,
        LOCATOR_WORDS,
        QUERY_WORDS,
        NAME_WORDS,
        SOFTWARE_PARENTS,
    ]
    .into_iter()
    .flatten()
    .copied()
}

/// Splits a path into lowercase words per segment: `context.traits.userEmail` gives
/// `[[context], [traits], [user, email]]`. Separators are `_`, `-`, space and case changes.
pub fn words_of_path(path: &str) -> Vec<Vec<String>> {
    path.split('.').map(words_of_segment).collect()
}

fn words_of_segment(segment: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = segment.chars().collect();
    for (index, &character) in chars.iter().enumerate() {
        if !character.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let previous = index.checked_sub(1).map(|at| chars[at]);
        let next = chars.get(index + 1).copied();
        let starts_word = character.is_uppercase()
            && match previous {
                Some(before) if before.is_lowercase() || before.is_numeric() => true,
                // The last capital of an acronym starts the next word: `IPAddress` is `ip address`.
                Some(before) if before.is_uppercase() => next.is_some_and(char::is_lowercase),
                _ => false,
            };
        if starts_word && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.extend(character.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn contains_any(words: &[String], set: &[&str]) -> bool {
    words.iter().any(|word| set.contains(&word.as_str()))
}

/// Whether adjacent words spell a set member: `e_mail` is `e` + `mail`, `ip_address`, `user_name`.
fn joins_any(words: &[String], set: &[&str]) -> bool {
    let joined: String = words.concat();
    set.contains(&joined.as_str())
        || words
            .windows(2)
            .any(|pair| set.contains(&format!("{}{}", pair[0], pair[1]).as_str()))
}

/// The forbidden class a field path belongs to, if any.
///
/// `kind` is the message type the field is declared for: in a `group` message the traits
/// describe the organization, so `traits.name` is a company name there.
pub fn classify(kind: Option<MessageKind>, path: &str) -> Option<ForbiddenClass> {
    let segments = words_of_path(path);
    let all_words: Vec<String> = segments.iter().flatten().cloned().collect();
    let leaf = segments.last().cloned().unwrap_or_default();
    let parent = segments
        .len()
        .checked_sub(2)
        .map(|at| segments[at].clone())
        .unwrap_or_default();

    if contains_any(&all_words, EMAIL_WORDS)
        || segments.iter().any(|words| joins_any(words, EMAIL_WORDS))
    {
        return Some(ForbiddenClass::EmailAddress);
    }
    if contains_any(&all_words, IP_WORDS) || segments.iter().any(|words| joins_any(words, IP_WORDS))
    {
        return Some(ForbiddenClass::IpAddress);
    }
    if contains_any(&leaf, QUERY_WORDS) || joins_any(&leaf, QUERY_WORDS) {
        return Some(ForbiddenClass::SearchQuery);
    }
    let is_identifier = leaf
        .last()
        .is_some_and(|word| word == "id" || word == "ids");
    let about_company = contains_any(&all_words, COMPANY_WORDS)
        || (kind == Some(MessageKind::Group)
            && segments.first().is_some_and(|words| words == &["traits"]));
    let about_document = contains_any(&all_words, DOCUMENT_WORDS);
    if contains_any(&leaf, LOCATOR_WORDS) || joins_any(&leaf, LOCATOR_WORDS) {
        return Some(if about_company {
            ForbiddenClass::CompanyName
        } else {
            ForbiddenClass::DocumentName
        });
    }
    let names_something = contains_any(&leaf, NAME_WORDS)
        || joins_any(&leaf, NAME_WORDS)
        || leaf
            .last()
            .is_some_and(|word| word.ends_with("name") || word.ends_with("names"));
    if names_something {
        let names_software =
            leaf.len() == 1 && leaf[0] == "name" && contains_any(&parent, SOFTWARE_PARENTS);
        if names_software && !about_company && !about_document {
            return None;
        }
        return Some(if about_company {
            ForbiddenClass::CompanyName
        } else if about_document {
            ForbiddenClass::DocumentName
        } else {
            ForbiddenClass::UserName
        });
    }
    // A bare organization field (`traits.company: "Firm LLP"`) holds its name; its id does not.
    if contains_any(&leaf, COMPANY_WORDS) && !is_identifier {
        return Some(ForbiddenClass::CompanyName);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_on_case_and_separators() {
        assert_eq!(words_of_path("userEmail"), vec![vec!["user", "email"]]);
        assert_eq!(words_of_path("IPAddress"), vec![vec!["ip", "address"]]);
        assert_eq!(words_of_path("e_mail"), vec![vec!["e", "mail"]]);
        assert_eq!(
            words_of_path("context.app.name"),
            vec![vec!["context"], vec!["app"], vec!["name"]]
        );
        assert_eq!(
            words_of_path("document-name v2"),
            vec![vec!["document", "name", "v2"]]
        );
    }

    #[test]
    fn every_forbidden_class_is_recognized_in_its_spellings() {
        let cases: &[(&str, ForbiddenClass)] = &[
            ("traits.email", ForbiddenClass::EmailAddress),
            ("traits.Email", ForbiddenClass::EmailAddress),
            ("properties.e_mail", ForbiddenClass::EmailAddress),
            ("properties.userEmail", ForbiddenClass::EmailAddress),
            ("properties.EMAIL_ADDRESS", ForbiddenClass::EmailAddress),
            ("properties.e-mail", ForbiddenClass::EmailAddress),
            ("context.traits.company.name", ForbiddenClass::CompanyName),
            ("traits.company", ForbiddenClass::CompanyName),
            ("properties.companyName", ForbiddenClass::CompanyName),
            ("properties.firm_name", ForbiddenClass::CompanyName),
            ("traits.organisation", ForbiddenClass::CompanyName),
            ("traits.name", ForbiddenClass::UserName),
            ("traits.firstName", ForbiddenClass::UserName),
            ("traits.last_name", ForbiddenClass::UserName),
            ("traits.displayname", ForbiddenClass::UserName),
            ("properties.username", ForbiddenClass::UserName),
            ("context.traits.full_name", ForbiddenClass::UserName),
            ("context.device.name", ForbiddenClass::UserName),
            ("properties.document_name", ForbiddenClass::DocumentName),
            ("properties.DocumentName", ForbiddenClass::DocumentName),
            ("properties.workspace_name", ForbiddenClass::DocumentName),
            ("properties.folder.name", ForbiddenClass::DocumentName),
            ("properties.matterName", ForbiddenClass::DocumentName),
            ("properties.file_name", ForbiddenClass::DocumentName),
            ("properties.filename", ForbiddenClass::DocumentName),
            ("properties.title", ForbiddenClass::DocumentName),
            ("properties.path", ForbiddenClass::DocumentName),
            ("properties.url", ForbiddenClass::DocumentName),
            ("properties.referrer", ForbiddenClass::DocumentName),
            ("context.page.url", ForbiddenClass::DocumentName),
            ("context.ip", ForbiddenClass::IpAddress),
            ("properties.clientIp", ForbiddenClass::IpAddress),
            ("properties.ip_address", ForbiddenClass::IpAddress),
            ("properties.IPAddress", ForbiddenClass::IpAddress),
            ("properties.query", ForbiddenClass::SearchQuery),
            ("properties.search_query", ForbiddenClass::SearchQuery),
            ("properties.searchTerm", ForbiddenClass::SearchQuery),
            ("context.page.search", ForbiddenClass::SearchQuery),
            ("properties.q", ForbiddenClass::SearchQuery),
        ];
        for (path, class) in cases {
            assert_eq!(
                classify(Some(MessageKind::Track), path),
                Some(*class),
                "{path}"
            );
        }
        assert_eq!(
            classify(Some(MessageKind::Group), "traits.name"),
            Some(ForbiddenClass::CompanyName)
        );
    }

    #[test]
    fn software_names_ids_and_measures_are_not_forbidden() {
        for path in [
            "context.app.name",
            "context.os.name",
            "context.library.name",
            "context.app.version",
            "context.locale",
            "context.timezone",
            "properties.feature",
            "properties.duration_ms",
            "properties.result_count",
            "properties.document_id",
            "properties.workspace_id",
            "traits.company.id",
            "context.groupId",
            "userId",
            "anonymousId",
            "context.device.id",
        ] {
            assert_eq!(classify(Some(MessageKind::Track), path), None, "{path}");
        }
    }

    #[test]
    fn a_software_parent_does_not_excuse_a_company_or_document_name() {
        assert_eq!(
            classify(None, "company.app.name"),
            Some(ForbiddenClass::CompanyName)
        );
        assert_eq!(
            classify(None, "document.app.name"),
            Some(ForbiddenClass::DocumentName)
        );
    }
}
