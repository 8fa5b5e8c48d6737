import { defineSearchAttributeKey } from '@temporalio/common';

/**
 * Docket's search attributes: they make investigations searchable in `GET /v1/investigations` and in
 * the Temporal Web UI. The dev server registers them at start (scripts/lib/temporal-dev.ts); on an
 * existing cluster the main worker registers any that are missing.
 */
export const SEARCH_ATTRIBUTES = {
  DocketSource: 'Keyword',
  DocketVerdict: 'Keyword',
  DocketEngines: 'KeywordList',
  DocketObservableTypes: 'KeywordList',
} as const;

export const sourceKey = defineSearchAttributeKey('DocketSource', 'KEYWORD');
export const verdictKey = defineSearchAttributeKey('DocketVerdict', 'KEYWORD');
export const enginesKey = defineSearchAttributeKey('DocketEngines', 'KEYWORD_LIST');
export const observableTypesKey = defineSearchAttributeKey('DocketObservableTypes', 'KEYWORD_LIST');
