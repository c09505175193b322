"""(being written)"""

from flask import Blueprint

blueprint = Blueprint("audit", __name__)
