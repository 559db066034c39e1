"""Placeholder: filled by the issue-13 work on unsubscribe routes."""

from fastapi import APIRouter

router = APIRouter()
