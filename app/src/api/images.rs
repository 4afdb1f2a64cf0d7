//! Browsing the catalog.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::model::{DiskFormat, Image, ImageKind, ImagePage};
use crate::query::{Condition, Direction, Field, Op, Query, Value};

/// Images per page in the browser.
pub const UI_PAGE_SIZE: u64 = 20;

/// The orders the catalog page offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogSort {
    #[default]
    Newest,
    Name,
    Size,
}

impl CatalogSort {
    pub const ALL: [CatalogSort; 3] = [Self::Newest, Self::Name, Self::Size];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::Name => "name",
            Self::Size => "size",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sort| sort.as_str() == text)
    }
}

/// What the catalog page's URL says: search text, kind, whose images, order and page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogParams {
    pub q: String,
    pub kind: Option<ImageKind>,
    /// The detected format of the bytes.
    pub format: Option<DiskFormat>,
    pub mine: bool,
    pub sort: CatalogSort,
    /// 1-based.
    pub page: u64,
}

impl CatalogParams {
    /// The core query for these parameters; `owner` restricts to one user's images.
    pub fn to_query(&self, owner: Option<i64>) -> Result<Query, CoreError> {
        let page = self.page.max(1);
        let mut query = Query::new(UI_PAGE_SIZE).offset((page - 1) * UI_PAGE_SIZE);
        let search = self.q.trim();
        if !search.is_empty() {
            // The search box matches anywhere in the name or label, or what
            // inspection found (an ISO's volume label, an appliance's
            // product, its guest OS); `%` and `_` typed by the user are taken
            // literally.
            let pattern = Value::Text(format!("%{}%", escape_like(search)));
            let searched = [
                Field::Name,
                Field::Label,
                Field::VolumeLabel,
                Field::Product,
                Field::OsType,
            ];
            query = query.filter(Condition::Any(
                searched
                    .into_iter()
                    .map(|field| Condition::compare(field, Op::Like, pattern.clone()))
                    .collect::<Result<_, _>>()?,
            ));
        }
        if let Some(kind) = self.kind {
            query = query.filter(Condition::compare(
                Field::Kind,
                Op::Eq,
                Value::Text(kind.as_str().into()),
            )?);
        }
        if let Some(format) = self.format {
            query = query.filter(Condition::compare(
                Field::Format,
                Op::Eq,
                Value::Text(format.as_str().into()),
            )?);
        }
        if let Some(owner) = owner {
            query = query.filter(Condition::compare(
                Field::OwnerId,
                Op::Eq,
                Value::Int(owner),
            )?);
        }
        Ok(match self.sort {
            CatalogSort::Newest => query.sort_by(Field::CreatedAt, Direction::Desc),
            CatalogSort::Name => query.sort_by(Field::Name, Direction::Asc),
            CatalogSort::Size => query.sort_by(Field::Size, Direction::Desc),
        }
        .sort_by(Field::Id, Direction::Desc))
    }
}

/// Escapes `LIKE` wildcards so that they match themselves (with `\` as escape).
pub fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A page of the catalog as the signed-in user (or an anonymous visitor) sees it.
#[server(prefix = "/api/ui", endpoint = "images")]
pub async fn list_images(params: CatalogParams) -> Result<ImagePage, CoreError> {
    use crate::ports::respond;
    let (catalog, viewer) = crate::ports::request_context()?;
    let owner = if params.mine {
        Some(respond(viewer.require_user())?.id)
    } else {
        None
    };
    let query = respond(params.to_query(owner))?;
    respond(catalog.list_images(&viewer, query).await)
}

/// One image's record.
#[server(prefix = "/api/ui", endpoint = "image")]
pub async fn get_image(id: i64) -> Result<Image, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.get_image(&viewer, id).await)
}

/// Deletes an image (as ViCE's `DELETE /v1/image/{id}`) once the form's
/// confirmation is ticked, then shows the viewer's images.
#[server(prefix = "/api/ui", endpoint = "images/delete")]
pub async fn delete_image(id: i64, confirm: Option<String>) -> Result<(), CoreError> {
    use crate::ports::{request_context, respond};
    if confirm.as_deref() != Some("yes") {
        return respond(Err(CoreError::invalid(
            "tick \"Yes, delete this image\" to confirm",
        )));
    }
    let (catalog, viewer) = request_context()?;
    respond(catalog.delete_image(&viewer, id).await)?;
    leptos_axum::redirect("/?mine=true");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_escaped_and_matches_name_or_label() {
        let params = CatalogParams {
            q: "50%_off".into(),
            ..Default::default()
        };
        let query = params.to_query(None).unwrap();
        let Condition::All(items) = &query.condition else {
            panic!("not a conjunction")
        };
        let Condition::Any(alternatives) = &items[0] else {
            panic!("not a disjunction")
        };
        assert_eq!(
            alternatives[0],
            Condition::Compare {
                field: Field::Name,
                op: Op::Like,
                value: Value::Text("%50\\%\\_off%".into())
            }
        );
    }

    #[test]
    fn pages_start_at_one() {
        let params = CatalogParams {
            page: 3,
            ..Default::default()
        };
        assert_eq!(params.to_query(None).unwrap().offset, 2 * UI_PAGE_SIZE);
        let params = CatalogParams {
            page: 0,
            ..Default::default()
        };
        assert_eq!(params.to_query(None).unwrap().offset, 0);
    }
}
