"""Placeholder: filled by the issue-13 work on inbound routes."""

from fastapi import APIRouter

router = APIRouter()
